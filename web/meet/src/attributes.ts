// What moim meet keeps in a participant's LiveKit attributes.

import type { Participant } from 'livekit-client';

export const HAND_ATTRIBUTE = 'hand';

export function handRaised(p: Participant): boolean {
  return p.attributes[HAND_ATTRIBUTE] === 'up';
}
