// Switching camera, microphone and speaker during a call.

import { Room } from 'livekit-client';
import { h } from './dom';
import { deviceProblem, report } from './errors';
import { t, type Key } from './i18n';

const KINDS: [MediaDeviceKind, Key][] = [
  ['videoinput', 'camera'],
  ['audioinput', 'microphone'],
  ['audiooutput', 'speaker'],
];

export function devicePicker(room: Room): HTMLElement {
  const box = h('details', { class: 'devices' }, h('summary', {}, t('devices')));
  const fill = async () => {
    const rows = await Promise.all(
      KINDS.map(async ([kind, label]) => {
        const devices = await Room.getLocalDevices(kind, false).catch(() => []);
        const id = `device-${kind}`;
        const select = h('select', { id });
        select.replaceChildren(...devices.map((d) => h('option', { value: d.deviceId }, d.label || d.deviceId.slice(0, 8))));
        const active = room.getActiveDevice(kind);
        if (active) select.value = active;
        select.addEventListener('change', () => {
          room.switchActiveDevice(kind, select.value).catch((e: unknown) => report(deviceProblem(e)));
        });
        return h('p', { class: 'row' }, h('label', { for: id }, t(label)), select);
      }),
    );
    box.replaceChildren(box.firstChild!, ...rows);
  };
  box.addEventListener('toggle', () => {
    if (box.open) void fill();
  });
  navigator.mediaDevices?.addEventListener('devicechange', () => {
    if (box.open) void fill();
  });
  return box;
}
