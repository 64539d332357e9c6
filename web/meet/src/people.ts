// The participant list, and for hosts: mute, remove, the lobby, end for everyone.

import { RoomEvent, type Room } from 'livekit-client';
import { api, type LobbyGuest } from './api';
import { h } from './dom';
import { apiProblem, report } from './errors';
import { t } from './i18n';
import { nameOf } from './tiles';

export function peoplePanel(room: Room, roomId: string, isHost: boolean): HTMLElement {
  const list = h('ul', { class: 'people', 'data-testid': 'people' });
  const refresh = () => {
    const everyone = [room.localParticipant, ...room.remoteParticipants.values()];
    list.replaceChildren(
      ...everyone.map((p) => {
        const item = h('li', { 'data-identity': p.identity }, nameOf(p), p.isLocal ? ` ${t('you')}` : '');
        if (isHost && !p.isLocal) {
          const act = (label: string, run: () => Promise<unknown>) =>
            h('button', { type: 'button', 'aria-label': `${label}: ${nameOf(p)}`, onclick: () => void run().catch((e) => report(apiProblem(e))) }, label);
          item.append(' ', act(t('muteThem'), () => api.mute(roomId, p.identity)), ' ', act(t('removeThem'), () => api.remove(roomId, p.identity)));
        }
        return item;
      }),
    );
  };
  for (const ev of [RoomEvent.ParticipantConnected, RoomEvent.ParticipantDisconnected, RoomEvent.ParticipantNameChanged, RoomEvent.Connected]) {
    room.on(ev, refresh);
  }
  refresh();
  const panel = h('section', { class: 'side people-panel', 'aria-label': t('people') }, h('h2', {}, t('people')), list);
  if (isHost) panel.append(lobbyPanel(roomId));
  return panel;
}

/** Who waits in the lobby, pushed by the server as server-sent events. */
function lobbyPanel(roomId: string): HTMLElement {
  const list = h('ul', { class: 'lobby', 'data-testid': 'lobby' });
  const show = (waiting: LobbyGuest[]) => {
    if (waiting.length === 0) {
      list.replaceChildren(h('li', {}, t('nobodyWaiting')));
      return;
    }
    list.replaceChildren(
      ...waiting.map((g) => {
        const decide = (label: string, run: (room: string, ticket: string) => Promise<void>) =>
          h('button', { type: 'button', 'aria-label': `${label}: ${g.name}`, onclick: () => void run(roomId, g.id).catch((e) => report(apiProblem(e))) }, label);
        return h('li', { 'data-ticket': g.id }, g.name, ' ', decide(t('admit'), api.admit), ' ', decide(t('deny'), api.deny));
      }),
    );
  };
  show([]);
  const events = new EventSource(api.lobbyEvents(roomId));
  events.addEventListener('lobby', (ev) => {
    try {
      show((JSON.parse((ev as MessageEvent<string>).data) as { waiting: LobbyGuest[] }).waiting);
    } catch {
      // A malformed event is dropped; the next one (at most 15 s later) replaces it.
    }
  });
  const section = h('section', { 'aria-label': t('lobby') }, h('h3', {}, t('lobby')), list);
  // Closed when the panel leaves the page.
  new MutationObserver((_, observer) => {
    if (!section.isConnected) {
      events.close();
      observer.disconnect();
    }
  }).observe(document.body, { childList: true, subtree: true });
  return section;
}
