// Chat over LiveKit data packets with the topic "chat": reliable, to everyone in the room.

import { RoomEvent, type Participant, type Room } from 'livekit-client';
import { h } from './dom';
import { t } from './i18n';
import { nameOf } from './tiles';

export const CHAT_TOPIC = 'chat';
const MAX_MESSAGE = 2000;

interface ChatMessage {
  text: string;
  at: number;
}

export function chatPanel(room: Room): HTMLElement {
  const log = h('ol', { class: 'chat-log', 'aria-live': 'polite', 'data-testid': 'chat-log' });
  const input = h('input', { id: 'chat-input', maxlength: MAX_MESSAGE, placeholder: t('chatPlaceholder'), autocomplete: 'off' });
  const form = h('form', { class: 'chat-form' }, h('label', { for: 'chat-input', class: 'sr' }, t('chat')), input, h('button', { type: 'submit' }, t('send')));
  const add = (from: string, msg: ChatMessage, mine: boolean) => {
    const time = new Date(msg.at).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
    log.append(h('li', { class: mine ? 'mine' : '' }, h('b', {}, from), ' ', h('time', {}, time), h('p', {}, msg.text)));
    log.scrollTop = log.scrollHeight;
  };
  room.on(RoomEvent.DataReceived, (payload: Uint8Array, from?: Participant, _kind?: unknown, topic?: string) => {
    if (topic !== CHAT_TOPIC) return;
    const msg = parse(payload);
    if (msg) add(from ? nameOf(from) : '?', msg, false);
  });
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const text = input.value.trim().slice(0, MAX_MESSAGE);
    if (!text) return;
    const msg: ChatMessage = { text, at: Date.now() };
    void room.localParticipant.publishData(new TextEncoder().encode(JSON.stringify(msg)), { reliable: true, topic: CHAT_TOPIC });
    add(nameOf(room.localParticipant), msg, true);
    input.value = '';
  });
  return h('section', { class: 'side chat', 'aria-label': t('chat') }, h('h2', {}, t('chat')), log, form);
}

/** A message from another browser; anything else is dropped. */
function parse(payload: Uint8Array): ChatMessage | null {
  try {
    const v = JSON.parse(new TextDecoder().decode(payload)) as unknown;
    if (typeof v !== 'object' || v === null) return null;
    const { text, at } = v as Record<string, unknown>;
    if (typeof text !== 'string' || !text) return null;
    return { text: text.slice(0, MAX_MESSAGE), at: typeof at === 'number' ? at : Date.now() };
  } catch {
    return null;
  }
}
