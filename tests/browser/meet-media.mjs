// What a moim meet page receives, read from its livekit-client Room (`window.moimRoom`) and
// getStats(): shared by the suites that drive moim meet.
import { waitFor, evalWithin } from './harness.mjs';

/** What `page`'s room receives from the participant called `name`: frames decoded, audio packets. */
export async function received(page, name) {
  return evalWithin(page, async (name) => {
    const room = window.moimRoom;
    const from = room && [...room.remoteParticipants.values()].find((p) => p.name === name);
    const out = { camera: 0, screen: 0, audio: 0 };
    if (!from) return out;
    for (const pub of from.trackPublications.values()) {
      const report = pub.track && (await pub.track.getRTCStatsReport());
      report?.forEach((s) => {
        if (s.type !== 'inbound-rtp') return;
        if (s.kind === 'video') out[pub.source === 'screen_share' ? 'screen' : 'camera'] += s.framesDecoded ?? 0;
        else out.audio += s.packetsReceived ?? 0;
      });
    }
    return out;
  }, name);
}

/** Waits until what `page` receives from `name` has grown in every one of `kinds`. */
export async function flowing(page, name, kinds) {
  const first = await received(page, name);
  let last = first;
  await waitFor(
    async () => {
      last = await received(page, name);
      return kinds.every((k) => last[k] > first[k] && last[k] > 0);
    },
    { timeout: 20_000, describe: () => `${page.label} from ${name}: ${JSON.stringify(first)} -> ${JSON.stringify(last)}` },
  );
  return { first, last };
}

