-- Invite links: what lets a guest (no account) into a room, for a while
-- and a number of uses. Stored by the SHA-256 of the token the link
-- carries, so a leaked database opens no room.
CREATE TABLE invites (
    token_hash TEXT PRIMARY KEY,
    room_id TEXT NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    created_by TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    -- NULL: any number of uses until it expires.
    max_uses BIGINT,
    uses BIGINT NOT NULL
);
CREATE INDEX invites_by_room ON invites (room_id);
