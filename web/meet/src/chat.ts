// Chat: live as LiveKit data packets on the topic "chat" (reliable, to everyone in the room),
// and kept by the app API so that someone who joins late reads what was said. Each message
// has an id of its sender's making; one that arrives both ways is shown once.

import { RoomEvent, type Participant, type Room } from 'livekit-client';
import { api } from './api';
import { h } from './dom';
import { apiProblem, report } from './errors';
import { t } from './i18n';
import { nameOf } from './tiles';

export const CHAT_TOPIC = 'chat';
const MAX_MESSAGE = 2000;

interface ChatMessage {
  id: string;
  text: string;
  at: number;
}

/** `token` gives the join token as it is now: the server replaces it while the meeting lasts. */
export function chatPanel(room: Room, roomId: string, token: () => string): HTMLElement {
  const log = h('ol', { class: 'chat-log', 'aria-live': 'polite', 'data-testid': 'chat-log' });
  const input = h('input', { id: 'chat-input', maxlength: MAX_MESSAGE, placeholder: t('chatPlaceholder'), autocomplete: 'off' });
  const form = h('form', { class: 'chat-form' }, h('label', { for: 'chat-input', class: 'sr' }, t('chat')), input, h('button', { type: 'submit' }, t('send')));
  const seen = new Set<string>();
  const add = (from: string, msg: ChatMessage, mine: boolean) => {
    if (seen.has(msg.id)) return;
    seen.add(msg.id);
    const time = new Date(msg.at).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
    const item = h('li', { class: mine ? 'mine' : '', 'data-id': msg.id }, h('b', {}, from), ' ', h('time', {}, time), h('p', {}, msg.text));
    // History and live messages can interleave: keep the log in time order.
    const later = [...log.children].find((li) => Number((li as HTMLElement).dataset.at) > msg.at);
    item.dataset.at = String(msg.at);
    log.insertBefore(item, later ?? null);
    log.scrollTop = log.scrollHeight;
  };
  room.on(RoomEvent.DataReceived, (payload: Uint8Array, from?: Participant, _kind?: unknown, topic?: string) => {
    if (topic !== CHAT_TOPIC) return;
    const msg = parse(payload);
    if (msg) add(from ? nameOf(from) : '?', msg, false);
  });
  void api.chatHistory(roomId, token()).then(
    (history) => {
      for (const m of history) add(m.name, { id: m.id, text: m.text, at: m.sentAt }, m.identity === room.localParticipant.identity);
    },
    (e) => report(apiProblem(e)),
  );
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const text = input.value.trim().slice(0, MAX_MESSAGE);
    if (!text) return;
    const msg: ChatMessage = { id: crypto.randomUUID(), text, at: Date.now() };
    void room.localParticipant.publishData(new TextEncoder().encode(JSON.stringify(msg)), { reliable: true, topic: CHAT_TOPIC });
    void api.keepChat(roomId, token(), { id: msg.id, text }).catch((e) => report(apiProblem(e)));
    add(nameOf(room.localParticipant), msg, true);
    input.value = '';
  });
  return h('section', { class: 'side chat', 'aria-label': t('chat') }, h('h2', {}, t('chat')), log, form);
}

/** A message from another participant's page; anything else is dropped. */
function parse(payload: Uint8Array): ChatMessage | null {
  try {
    const v = JSON.parse(new TextDecoder().decode(payload)) as unknown;
    if (typeof v !== 'object' || v === null) return null;
    const { id, text, at } = v as Record<string, unknown>;
    if (typeof text !== 'string' || !text || typeof id !== 'string' || id.length > 64) return null;
    return { id, text: text.slice(0, MAX_MESSAGE), at: typeof at === 'number' ? at : Date.now() };
  } catch {
    return null;
  }
}
