// Raising a hand (a participant attribute, so someone who joins later sees it) and
// emoji reactions (lossy data packets on the topic "reaction": a reaction missed is no loss).

import { RoomEvent, type Participant, type Room } from 'livekit-client';
import { h } from './dom';
import { deviceProblem, report } from './errors';
import { t } from './i18n';
import { HAND_ATTRIBUTE, handRaised } from './attributes';
import type { Grid } from './tiles';

export const REACTION_TOPIC = 'reaction';
/** The reactions offered; anything else that arrives is dropped. */
export const REACTIONS = ['👍', '👏', '😂', '🎉', '❤️'] as const;
const REACTION_SHOWN_MS = 3000;

/** The hand button; the grid shows whose hands are up. */
export function handButton(room: Room): HTMLButtonElement {
  const local = room.localParticipant;
  const button = h('button', { type: 'button', 'data-testid': 'toggle-hand', 'aria-pressed': 'false' });
  const label = () => {
    const up = handRaised(local);
    button.textContent = up ? t('lowerHand') : t('raiseHand');
    button.setAttribute('aria-pressed', String(up));
  };
  button.addEventListener('click', () => {
    const up = !handRaised(local);
    local.setAttributes({ [HAND_ATTRIBUTE]: up ? 'up' : '' }).then(label, (e: unknown) => report(deviceProblem(e)));
  });
  room.on(RoomEvent.ParticipantAttributesChanged, (_changed, p) => {
    if (p.isLocal) label();
  });
  label();
  return button;
}

/** The reaction buttons, and reactions from others shown on their tiles. */
export function reactionBar(room: Room, grid: Grid): HTMLElement {
  const bar = h('span', { class: 'reactions', role: 'group', 'aria-label': t('reactions') });
  for (const emoji of REACTIONS) {
    bar.append(
      h(
        'button',
        {
          type: 'button',
          'aria-label': `${t('react')} ${emoji}`,
          onclick: () => {
            void room.localParticipant.publishData(new TextEncoder().encode(emoji), { reliable: false, topic: REACTION_TOPIC });
            grid.react(room.localParticipant, emoji, REACTION_SHOWN_MS);
          },
        },
        emoji,
      ),
    );
  }
  room.on(RoomEvent.DataReceived, (payload: Uint8Array, from?: Participant, _kind?: unknown, topic?: string) => {
    if (topic !== REACTION_TOPIC || !from) return;
    const emoji = new TextDecoder().decode(payload.slice(0, 16));
    if ((REACTIONS as readonly string[]).includes(emoji)) grid.react(from, emoji, REACTION_SHOWN_MS);
  });
  return bar;
}
