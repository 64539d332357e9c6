// The app API (docs/API.md): typed calls, the CSRF double-submit header, one refresh on an expired access token.

export interface User {
  id: string;
  displayName: string;
  email: string | null;
  avatarUrl: string | null;
}

export interface Provider {
  id: string;
  name: string;
  kind: string;
  loginUrl: string;
}

export interface Room {
  id: string;
  title: string;
  guestsAllowed: boolean;
  lobby: boolean;
  e2eeRequired: boolean;
  role: 'host' | 'participant';
  createdAt: number;
}

export interface Invite {
  token: string;
  url: string;
  expiresAt: number;
  maxUses: number | null;
}

export interface JoinGrant {
  serverUrl: string;
  token: string;
}

export interface Waiting {
  ticket: string;
  status: 'waiting';
}

export interface ChatEntry {
  id: string;
  identity: string;
  name: string;
  text: string;
  sentAt: number;
}

export interface LobbyGuest {
  id: string;
  name: string;
  since: number;
}

/** What the app API answered instead of success. `code` is for matching, `message` for people. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** The server could not be reached at all (no HTTP answer). */
export class Unreachable extends Error {}

function csrfToken(): string | undefined {
  for (const part of document.cookie.split(';')) {
    const [name, ...rest] = part.trim().split('=');
    if (name === 'moim_csrf' || name === '__Host-moim_csrf') return decodeURIComponent(rest.join('='));
  }
  return undefined;
}

async function send(method: string, path: string, body?: unknown, extra: Record<string, string> = {}): Promise<Response> {
  const headers: Record<string, string> = { accept: 'application/json', ...extra };
  const csrf = csrfToken();
  if (csrf) headers['x-csrf-token'] = csrf;
  if (body !== undefined) headers['content-type'] = 'application/json';
  try {
    return await fetch(path, {
      method,
      headers,
      body: body === undefined ? null : JSON.stringify(body),
      credentials: 'same-origin',
    });
  } catch (e) {
    throw new Unreachable(e instanceof Error ? e.message : String(e));
  }
}

async function errorOf(res: Response): Promise<ApiError> {
  try {
    const body = (await res.json()) as { code?: string; message?: string };
    return new ApiError(res.status, body.code ?? 'unknown', body.message ?? res.statusText);
  } catch {
    return new ApiError(res.status, 'unknown', `${res.status} ${res.statusText}`);
  }
}

/** One call; an expired access token is refreshed once and the call repeated. */
async function call(method: string, path: string, body?: unknown): Promise<Response> {
  let res = await send(method, path, body);
  if (res.status === 401) {
    const err = await errorOf(res.clone());
    if (err.code === 'access_expired') {
      const refreshed = await send('POST', '/auth/refresh');
      if (refreshed.ok) res = await send(method, path, body);
    }
  }
  return res;
}

async function json<T>(method: string, path: string, body?: unknown): Promise<T> {
  const res = await call(method, path, body);
  if (!res.ok) throw await errorOf(res);
  return (await res.json()) as T;
}

async function nothing(method: string, path: string, body?: unknown): Promise<void> {
  const res = await call(method, path, body);
  if (!res.ok) throw await errorOf(res);
}

const room = (id: string) => `/api/rooms/${encodeURIComponent(id)}`;

export const api = {
  providers: () => json<{ providers: Provider[] }>('GET', '/auth/providers').then((r) => r.providers),
  /** The logged-in user, or null without a session. */
  me: async (): Promise<User | null> => {
    // Every session sets the readable CSRF cookie: without it there is none to ask
    // about (and no 401 for the console to report on every visit).
    if (!csrfToken()) return null;
    try {
      return await json<User>('GET', '/api/me');
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) return null;
      throw e;
    }
  },
  devLogin: (name: string) => json<{ user: User }>('POST', '/auth/dev-login', { name }).then((r) => r.user),
  logout: () => nothing('POST', '/auth/logout'),
  rooms: () => json<{ rooms: Room[] }>('GET', '/api/rooms').then((r) => r.rooms),
  room: (id: string) => json<Room>('GET', room(id)),
  createRoom: (fields: { title: string; guestsAllowed: boolean; lobby: boolean }) =>
    json<Room>('POST', '/api/rooms', fields),
  invite: (id: string) => json<Invite>('POST', `${room(id)}/invites`, {}),
  /** A grant to join, or a lobby ticket to wait with. */
  join: async (id: string, body: { name?: string; invite?: string; ticket?: string }): Promise<JoinGrant | Waiting> => {
    const res = await call('POST', `${room(id)}/join`, body);
    if (!res.ok) throw await errorOf(res);
    return (await res.json()) as JoinGrant | Waiting;
  },
  lobby: (id: string) => json<{ waiting: LobbyGuest[] }>('GET', `${room(id)}/lobby`).then((r) => r.waiting),
  lobbyEvents: (id: string) => `${room(id)}/lobby`,
  admit: (id: string, ticket: string) => nothing('POST', `${room(id)}/lobby/${encodeURIComponent(ticket)}/admit`),
  deny: (id: string, ticket: string) => nothing('POST', `${room(id)}/lobby/${encodeURIComponent(ticket)}/deny`),
  mute: (id: string, identity: string) =>
    json<{ muted: string[] }>('POST', `${room(id)}/participants/${encodeURIComponent(identity)}/mute`, {}),
  remove: (id: string, identity: string) =>
    nothing('POST', `${room(id)}/participants/${encodeURIComponent(identity)}/remove`),
  end: (id: string) => nothing('POST', `${room(id)}/end`),
  /** The meeting's chat history; `token` is the join token (guests have no session). */
  chatHistory: async (id: string, token: string): Promise<ChatEntry[]> => {
    const res = await send('GET', `${room(id)}/chat`, undefined, { authorization: `Bearer ${token}` });
    if (!res.ok) throw await errorOf(res);
    return ((await res.json()) as { messages: ChatEntry[] }).messages;
  },
  keepChat: async (id: string, token: string, message: { id: string; text: string }): Promise<void> => {
    const res = await send('POST', `${room(id)}/chat`, message, { authorization: `Bearer ${token}` });
    if (!res.ok) throw await errorOf(res);
  },
};

export function isGrant(r: JoinGrant | Waiting): r is JoinGrant {
  return 'token' in r;
}
