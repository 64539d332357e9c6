// Home: log in, create a meeting, see mine, copy an invite link, join one by its link.

import { api, type Room, type User } from './api';
import { h } from './dom';
import { alertBox, apiProblem, report } from './errors';
import { header } from './header';
import { t } from './i18n';
import { navigate } from './nav';

export async function homeView(): Promise<HTMLElement> {
  const rerender = () => void navigate(location.pathname + location.search);
  let me: User | null;
  try {
    me = await api.me();
  } catch (e) {
    return page(rerender, null, alertBox(apiProblem(e)));
  }
  if (!me) return page(rerender, null, await loginPanel(rerender));
  const user = me;
  const logout = h('button', { type: 'button', onclick: () => void api.logout().then(rerender, (e) => report(apiProblem(e))) }, t('logout'));
  return page(
    rerender,
    h('span', { class: 'who' }, t('hello', { name: user.displayName }), ' ', logout),
    h('div', { class: 'home' }, newRoomForm(), joinByLink(), await roomList()),
  );
}

function page(rerender: () => void, right: Node | null, body: Node): HTMLElement {
  return h('div', { class: 'page' }, header(rerender, right ?? undefined), body);
}

async function loginPanel(rerender: () => void): Promise<HTMLElement> {
  const panel = h('section', { class: 'card', 'aria-labelledby': 'login-title' }, h('h1', { id: 'login-title' }, t('loginTitle')));
  let providers;
  try {
    providers = await api.providers();
  } catch (e) {
    panel.append(alertBox(apiProblem(e)));
    return panel;
  }
  if (providers.length === 0) panel.append(alertBox(t('noProviders')));
  const returnTo = encodeURIComponent(location.pathname + location.search);
  for (const p of providers) {
    if (p.kind === 'dev') {
      const name = h('input', { id: 'dev-name', name: 'name', required: true, maxlength: 64, autocomplete: 'name' });
      const form = h(
        'form',
        { class: 'row' },
        h('label', { for: 'dev-name' }, t('devLoginName')),
        name,
        h('button', { type: 'submit' }, t('devLogin')),
      );
      form.addEventListener('submit', (ev) => {
        ev.preventDefault();
        api.devLogin(name.value.trim()).then(rerender, (e) => report(apiProblem(e)));
      });
      panel.append(form);
    } else {
      panel.append(h('p', {}, h('a', { class: 'button', href: `${p.loginUrl}?return_to=${returnTo}` }, t('loginWith', { name: p.name }))));
    }
  }
  return panel;
}

function newRoomForm(): HTMLElement {
  const title = h('input', { id: 'room-title', name: 'title', required: true, maxlength: 100, value: t('newRoom') });
  const guests = h('input', { id: 'room-guests', type: 'checkbox', checked: true });
  const lobby = h('input', { id: 'room-lobby', type: 'checkbox' });
  const form = h(
    'form',
    { class: 'card', 'aria-labelledby': 'new-title' },
    h('h2', { id: 'new-title' }, t('newRoom')),
    h('p', { class: 'row' }, h('label', { for: 'room-title' }, t('roomTitle')), title),
    h('p', {}, guests, ' ', h('label', { for: 'room-guests' }, t('guestsAllowed'))),
    h('p', {}, lobby, ' ', h('label', { for: 'room-lobby' }, t('lobbyOn'))),
    h('button', { type: 'submit' }, t('create')),
  );
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    api
      .createRoom({ title: title.value.trim(), guestsAllowed: guests.checked, lobby: lobby.checked })
      .then((room) => navigate(`/r/${room.id}`), (e) => report(apiProblem(e)));
  });
  return form;
}

/** A room's link, or its bare id, typed or pasted. */
export function roomIdFrom(input: string): string | null {
  const text = input.trim();
  const m = /(?:\/r\/)?([a-z]{3}-[a-z]{4}-[a-z]{3})(?:[?#].*)?$/.exec(text);
  return m ? m[1]! : null;
}

function joinByLink(): HTMLElement {
  const link = h('input', { id: 'join-link', name: 'link', required: true, placeholder: 'abc-defg-hij' });
  const form = h(
    'form',
    { class: 'card row' },
    h('label', { for: 'join-link' }, t('joinByLink')),
    link,
    h('button', { type: 'submit' }, t('join')),
  );
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const id = roomIdFrom(link.value);
    if (!id) return report(t('errRoomNotFound'));
    const invite = /[?&]invite=([^&#]+)/.exec(link.value)?.[1];
    return navigate(`/r/${id}${invite ? `?invite=${invite}` : ''}`);
  });
  return form;
}

async function roomList(): Promise<HTMLElement> {
  const section = h('section', { class: 'card', 'aria-labelledby': 'rooms-title' }, h('h2', { id: 'rooms-title' }, t('myRooms')));
  let rooms: Room[];
  try {
    rooms = await api.rooms();
  } catch (e) {
    section.append(alertBox(apiProblem(e)));
    return section;
  }
  if (rooms.length === 0) section.append(h('p', {}, t('noRooms')));
  const list = h('ul', { class: 'rooms' });
  for (const room of rooms) {
    const item = h('li', { 'data-room': room.id }, h('a', { href: `/r/${room.id}` }, room.title), ' ', h('code', {}, room.id));
    if (room.role === 'host') item.append(' ', inviteButton(room.id));
    list.append(item);
  }
  section.append(list);
  return section;
}

export function inviteButton(roomId: string): HTMLElement {
  const out = h('output', { 'data-testid': 'invite-url', class: 'invite' });
  const button = h('button', {
    type: 'button',
    onclick: () => {
      api.invite(roomId).then(
        async (invite) => {
          out.textContent = invite.url;
          out.dataset.url = invite.url;
          // The link is shown either way; the clipboard is a convenience the browser may refuse.
          await navigator.clipboard?.writeText(invite.url).catch(() => undefined);
          out.setAttribute('aria-label', t('copied', { url: invite.url }));
        },
        (e) => report(apiProblem(e)),
      );
    },
  }, t('copyInvite'));
  return h('span', {}, button, ' ', out);
}
