// The meeting: connect with livekit-client, publish what the pre-join chose, and keep the page in step with the room.

import {
  ConnectionError,
  ConnectionErrorReason,
  DisconnectReason,
  type LocalTrackPublication,
  type Participant,
  Room,
  RoomEvent,
  Track,
} from 'livekit-client';
import { api } from './api';
import { chatPanel } from './chat';
import { h } from './dom';
import { inviteButton } from './home';
import { apiProblem, deviceProblem, report } from './errors';
import { t } from './i18n';
import { endingOf, leftView } from './left';
import { peoplePanel } from './people';
import type { Entry } from './prejoin';
import { devicePicker } from './devices';
import { handButton, reactionBar } from './gestures';
import { Grid } from './tiles';

/** Joins the room and returns its page; on the way out the page is replaced by the ending's. */
export async function roomView(entry: Entry, rejoinPath: string): Promise<HTMLElement> {
  const room = new Room({
    adaptiveStream: true,
    dynacast: true,
    publishDefaults: { simulcast: true },
    audioOutput: entry.choices.speakerId ? { deviceId: entry.choices.speakerId } : undefined,
  });
  // For tests and for people debugging in the console.
  (window as unknown as { moimRoom?: Room }).moimRoom = room;
  const grid = new Grid();
  const audioSink = h('div', { hidden: true });
  const sync = (p: Participant) => grid.sync(p);

  room
    .on(RoomEvent.ParticipantConnected, sync)
    .on(RoomEvent.ParticipantDisconnected, (p) => grid.remove(p))
    .on(RoomEvent.TrackSubscribed, (track, _pub, p) => {
      if (track.kind === Track.Kind.Audio) audioSink.append(track.attach());
      sync(p);
    })
    .on(RoomEvent.TrackUnsubscribed, (track, _pub, p) => {
      track.detach().forEach((el) => el.remove());
      sync(p);
    })
    .on(RoomEvent.TrackPublished, (_pub, p) => sync(p))
    .on(RoomEvent.TrackUnpublished, (_pub, p) => sync(p))
    .on(RoomEvent.TrackMuted, (_pub, p) => sync(p))
    .on(RoomEvent.TrackUnmuted, (_pub, p) => sync(p))
    .on(RoomEvent.LocalTrackPublished, () => sync(room.localParticipant))
    .on(RoomEvent.LocalTrackUnpublished, () => sync(room.localParticipant))
    .on(RoomEvent.ActiveSpeakersChanged, (speakers) => grid.speaking(speakers))
    .on(RoomEvent.ConnectionQualityChanged, (_q, p) => grid.quality(p))
    .on(RoomEvent.ParticipantAttributesChanged, (_changed, p) => sync(p))
    .on(RoomEvent.MediaDevicesError, (e) => report(deviceProblem(e)));

  const page = h('div', { class: 'page room', 'data-room': entry.roomId });
  room.on(RoomEvent.Disconnected, (reason?: DisconnectReason) => {
    for (const track of [entry.choices.audio, entry.choices.video]) track?.stop();
    page.replaceWith(leftView(endingOf(reason), rejoinPath));
  });

  // The join token lasts an hour; moim sends fresh ones while we are in the room
  // (refresh_token). livekit-client reconnects with them; chat uses them too.
  let token = entry.grant.token;
  room.engine.on('tokenRefreshed', (fresh: string) => {
    token = fresh;
  });
  try {
    await room.connect(entry.grant.serverUrl, entry.grant.token);
  } catch (e) {
    for (const track of [entry.choices.audio, entry.choices.video]) track?.stop();
    throw new Error(connectProblem(e));
  }
  const controls = controlBar(room, entry, grid);
  page.append(
    h('header', { class: 'bar' }, h('b', {}, entry.title), h('span', { class: 'spacer' }), entry.isHost ? inviteButton(entry.roomId) : null, h('code', {}, entry.roomId)),
    h('div', { class: 'stage' }, grid.element, h('aside', { class: 'sides' }, peoplePanel(room, entry.roomId, entry.isHost), chatPanel(room, entry.roomId, () => token))),
    controls,
    audioSink,
  );
  for (const track of [entry.choices.audio, entry.choices.video]) {
    if (track) await room.localParticipant.publishTrack(track).catch((e: unknown) => report(deviceProblem(e)));
  }
  sync(room.localParticipant);
  for (const p of room.remoteParticipants.values()) sync(p);
  return page;
}

function connectProblem(e: unknown): string {
  if (e instanceof ConnectionError) {
    if (e.reason === ConnectionErrorReason.ServerUnreachable || e.reason === ConnectionErrorReason.WebSocket) {
      return t('errWebSocket', { detail: e.message });
    }
    if (e.reason === ConnectionErrorReason.NotAllowed) return t('errTokenRefused', { detail: `${e.status ?? ''} ${e.message}`.trim() });
    if (/pc connection/.test(e.message)) return t('errMedia');
  }
  return apiProblem(e);
}

function controlBar(room: Room, entry: Entry, grid: Grid): HTMLElement {
  const local = room.localParticipant;
  const mic = h('button', { type: 'button', 'data-testid': 'toggle-mic', 'aria-pressed': 'false' });
  const cam = h('button', { type: 'button', 'data-testid': 'toggle-camera', 'aria-pressed': 'false' });
  const screen = h('button', { type: 'button', 'data-testid': 'toggle-screen', 'aria-pressed': 'false' });
  const notice = h('p', { class: 'notice', role: 'status', 'data-testid': 'notice' });
  let selfMuting = false;
  const label = () => {
    const micOn = local.isMicrophoneEnabled;
    const camOn = local.isCameraEnabled;
    const sharing = local.isScreenShareEnabled;
    mic.textContent = micOn ? t('mute') : t('unmute');
    mic.setAttribute('aria-pressed', String(!micOn));
    cam.textContent = camOn ? t('stopCamera') : t('startCamera');
    cam.setAttribute('aria-pressed', String(!camOn));
    screen.textContent = sharing ? t('stopShare') : t('shareScreen');
    screen.setAttribute('aria-pressed', String(sharing));
  };
  const toggle = async (run: () => Promise<unknown>) => {
    selfMuting = true;
    try {
      await run();
    } catch (e) {
      report(deviceProblem(e));
    } finally {
      selfMuting = false;
      label();
    }
  };
  mic.addEventListener('click', () => void toggle(() => local.setMicrophoneEnabled(!local.isMicrophoneEnabled)));
  cam.addEventListener('click', () => void toggle(() => local.setCameraEnabled(!local.isCameraEnabled)));
  screen.addEventListener('click', () => void toggle(() => local.setScreenShareEnabled(!local.isScreenShareEnabled, { audio: true })));
  room.on(RoomEvent.TrackMuted, (pub, p) => {
    // A mute nobody on this page asked for came from a host.
    if (p.isLocal && !selfMuting && (pub as LocalTrackPublication).source === Track.Source.Microphone) notice.textContent = t('mutedByHost');
    label();
  });
  room.on(RoomEvent.LocalTrackPublished, label).on(RoomEvent.LocalTrackUnpublished, label).on(RoomEvent.TrackUnmuted, label);
  const leave = h('button', { type: 'button', class: 'danger', onclick: () => void room.disconnect() }, t('leave'));
  const view = h('button', { type: 'button', 'data-testid': 'toggle-view', 'aria-pressed': 'false' }, t('speakerView'));
  view.addEventListener('click', () => {
    const speaker = view.getAttribute('aria-pressed') !== 'true';
    grid.setView(speaker ? 'speaker' : 'grid');
    view.setAttribute('aria-pressed', String(speaker));
    view.textContent = speaker ? t('gridView') : t('speakerView');
  });
  const bar = h('nav', { class: 'controls', 'aria-label': 'controls' }, mic, cam, screen, handButton(room), reactionBar(room, grid), view, devicePicker(room), leave);
  if (entry.isHost) {
    bar.append(h('button', { type: 'button', class: 'danger', onclick: () => void api.end(entry.roomId).catch((e) => report(apiProblem(e))) }, t('endForAll')));
  }
  bar.append(notice);
  label();
  return bar;
}
