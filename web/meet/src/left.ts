// After a meeting: why it ended for you, and a way back in.

import { DisconnectReason } from 'livekit-client';
import { h } from './dom';
import { header } from './header';
import { t, type Key } from './i18n';
import { navigate } from './nav';

export type Ending = 'left' | 'removed' | 'ended' | 'lost';

export function endingOf(reason: DisconnectReason | undefined): Ending {
  switch (reason) {
    case DisconnectReason.CLIENT_INITIATED:
      return 'left';
    case DisconnectReason.PARTICIPANT_REMOVED:
      return 'removed';
    case DisconnectReason.ROOM_DELETED:
      return 'ended';
    default:
      return 'lost';
  }
}

const TITLE: Record<Ending, Key> = { left: 'leftTitle', removed: 'removedTitle', ended: 'endedTitle', lost: 'lostTitle' };

export function leftView(ending: Ending, rejoinPath: string): HTMLElement {
  const rerender = () => void navigate(location.pathname + location.search);
  return h(
    'div',
    { class: 'page' },
    header(rerender),
    h(
      'section',
      { class: 'card left', 'data-ending': ending, 'data-testid': 'ending' },
      h('h1', {}, t(TITLE[ending])),
      h('p', { class: 'row' }, h('a', { class: 'button primary', href: rejoinPath }, t('rejoin')), h('a', { class: 'button', href: '/' }, t('home'))),
    ),
  );
}
