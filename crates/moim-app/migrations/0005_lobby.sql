-- Guests waiting for a host in a room with the lobby on. `id` is what
-- hosts see and admit by; the guest holds a secret whose SHA-256 is
-- `secret_hash`, and asks with it until admitted or denied.
CREATE TABLE lobby_tickets (
    id TEXT PRIMARY KEY,
    secret_hash TEXT NOT NULL UNIQUE,
    room_id TEXT NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    identity TEXT NOT NULL,
    state TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX lobby_tickets_by_room ON lobby_tickets (room_id, state);
