// Pre-join: see yourself, hear your level, pick devices, type a name (guests), join with either off.

import { createLocalAudioTrack, createLocalVideoTrack, Room, type LocalAudioTrack, type LocalVideoTrack } from 'livekit-client';
import { api, ApiError, isGrant, type JoinGrant, type User } from './api';
import { h } from './dom';
import { alertBox, apiProblem, deviceProblem } from './errors';
import { header } from './header';
import { t } from './i18n';
import { navigate } from './nav';
import { levelMeter } from './meter';

export interface Choices {
  name: string;
  audio: LocalAudioTrack | null;
  video: LocalVideoTrack | null;
  speakerId: string | undefined;
}

export interface Entry {
  roomId: string;
  title: string;
  grant: JoinGrant;
  choices: Choices;
  isHost: boolean;
}

/** Renders the pre-join page; `onJoin` gets what is needed to enter. */
export async function prejoinView(roomId: string, invite: string | null, onJoin: (e: Entry) => void): Promise<HTMLElement> {
  const rerender = () => void navigate(location.pathname + location.search);
  const problem = h('div', { class: 'problems' });
  const say = (message: string) => problem.replaceChildren(alertBox(message));
  let me: User | null = null;
  let title = roomId;
  let isHost = false;
  try {
    me = await api.me();
    if (me) {
      const room = await api.room(roomId);
      title = room.title;
      isHost = room.role === 'host';
    }
  } catch (e) {
    say(apiProblem(e));
  }
  if (!window.isSecureContext) say(t('errInsecure'));

  const preview = h('video', { class: 'preview mirrored', autoplay: true, muted: true, playsinline: true, 'aria-label': t('camera') });
  const meter = levelMeter(t('micLevel'));
  const camOn = h('input', { id: 'cam-on', type: 'checkbox', checked: true });
  const micOn = h('input', { id: 'mic-on', type: 'checkbox', checked: true });
  const camSelect = h('select', { id: 'cam-select' });
  const micSelect = h('select', { id: 'mic-select' });
  const speakerSelect = h('select', { id: 'speaker-select' });
  const name = h('input', { id: 'guest-name', name: 'name', required: true, maxlength: 64, autocomplete: 'name', value: me?.displayName ?? '' });
  if (me) name.readOnly = true;
  let video: LocalVideoTrack | null = null;
  let audio: LocalAudioTrack | null = null;

  const startVideo = async () => {
    try {
      video = await createLocalVideoTrack({ deviceId: camSelect.value || undefined, resolution: { width: 1280, height: 720 } });
      video.attach(preview);
    } catch (e) {
      camOn.checked = false;
      say(deviceProblem(e));
    }
  };
  const startAudio = async () => {
    try {
      audio = await createLocalAudioTrack({ deviceId: micSelect.value || undefined });
      meter.watch(audio.mediaStreamTrack);
    } catch (e) {
      micOn.checked = false;
      say(deviceProblem(e));
    }
  };
  const fillDevices = async () => {
    for (const [kind, select] of [['videoinput', camSelect], ['audioinput', micSelect], ['audiooutput', speakerSelect]] as const) {
      const devices = await Room.getLocalDevices(kind, false).catch(() => []);
      select.replaceChildren(...devices.map((d) => h('option', { value: d.deviceId }, d.label || d.deviceId.slice(0, 8))));
    }
  };
  camOn.addEventListener('change', () => {
    if (camOn.checked) void startVideo();
    else {
      video?.stop();
      video = null;
    }
  });
  micOn.addEventListener('change', () => {
    if (micOn.checked) void startAudio();
    else {
      audio?.stop();
      audio = null;
      meter.watch(null);
    }
  });
  camSelect.addEventListener('change', () => void video?.restartTrack({ deviceId: camSelect.value }));
  micSelect.addEventListener('change', () => void audio?.restartTrack({ deviceId: micSelect.value }).then(() => audio && meter.watch(audio.mediaStreamTrack)));

  const joinButton = h('button', { type: 'submit', class: 'primary' }, t('joinNow'));
  const status = h('p', { class: 'status', 'data-testid': 'status', role: 'status' });
  const form = h(
    'form',
    { class: 'card prejoin', 'aria-labelledby': 'prejoin-title' },
    h('h1', { id: 'prejoin-title' }, t('prejoinTitle', { title })),
    problem,
    h('div', { class: 'preview-box' }, preview),
    meter.element,
    h('p', { class: 'row' }, h('label', { for: 'guest-name' }, t('yourName')), name),
    h('p', { class: 'row' }, camOn, h('label', { for: 'cam-on' }, t('cameraOn')), h('label', { for: 'cam-select', class: 'sr' }, t('camera')), camSelect),
    h('p', { class: 'row' }, micOn, h('label', { for: 'mic-on' }, t('micOn')), h('label', { for: 'mic-select', class: 'sr' }, t('microphone')), micSelect),
    h('p', { class: 'row' }, h('label', { for: 'speaker-select' }, t('speaker')), speakerSelect),
    joinButton,
    status,
  );
  // Ask for both at once, so the browser shows one permission prompt.
  const devicesReady = (async () => {
    await Promise.all([startVideo(), startAudio()]);
    await fillDevices();
  })();
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    joinButton.disabled = true;
    const body = me ? {} : { name: name.value.trim(), invite: invite ?? undefined };
    // A click before the camera and microphone have started still takes them in.
    devicesReady
      .then(() => enter(roomId, body, status))
      .then((grant) => {
        meter.watch(null);
        onJoin({ roomId, title, grant, isHost, choices: { name: name.value.trim(), audio, video, speakerId: speakerSelect.value || undefined } });
      })
      .catch((e) => {
        joinButton.disabled = false;
        status.textContent = '';
        say(lobbyProblem(e) ?? apiProblem(e));
      });
  });

  return h('div', { class: 'page' }, header(rerender), form);
}

/** Joins, waiting in the lobby as long as the host has not decided. */
async function enter(roomId: string, first: { name?: string; invite?: string }, status: HTMLElement): Promise<JoinGrant> {
  let answer = await api.join(roomId, first);
  while (!isGrant(answer)) {
    status.textContent = t('waiting');
    status.dataset.state = 'waiting';
    answer = await api.join(roomId, { ticket: answer.ticket });
  }
  delete status.dataset.state;
  return answer;
}

function lobbyProblem(e: unknown): string | null {
  if (!(e instanceof ApiError)) return null;
  if (e.code === 'lobby_denied') return t('denied');
  if (e.code === 'lobby_lapsed') return t('lapsed');
  return null;
}
