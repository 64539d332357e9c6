// moim meet's entry: the routes. `/` is home; `/r/<room id>[?invite=…]` the pre-join, then the meeting.

import { show } from './dom';
import { alertBox, apiProblem, report } from './errors';
import { homeView, roomIdFrom } from './home';
import { render, setRouter } from './nav';
import { prejoinView } from './prejoin';
import { roomView } from './room';
import { h } from './dom';
import { t } from './i18n';

setRouter(async (path, params) => {
  const match = /^\/r\/([^/]+)$/.exec(path);
  if (!match) return homeView();
  const roomId = roomIdFrom(match[1]!);
  if (!roomId) return h('div', { class: 'page' }, alertBox(t('errRoomNotFound')));
  const rejoin = path + (params.get('invite') ? `?invite=${params.get('invite')}` : '');
  return prejoinView(roomId, params.get('invite'), (entry) => {
    roomView(entry, rejoin).then(show, (e: unknown) => {
      void render().then(() => report(e instanceof Error ? e.message : apiProblem(e)));
    });
  });
});

void render();
