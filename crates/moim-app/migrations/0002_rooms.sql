-- Rooms and who belongs to them. A room's id is what its link carries.
-- Flags are BIGINT 0 or 1: sqlx's Any driver reads booleans from PostgreSQL
-- but not from SQLite's integers, and BIGINT reads the same from both.
CREATE TABLE rooms (
    id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    guests_allowed BIGINT NOT NULL,
    lobby BIGINT NOT NULL,
    e2ee_required BIGINT NOT NULL,
    created_by TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL
);

CREATE TABLE room_members (
    room_id TEXT NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role TEXT NOT NULL,
    PRIMARY KEY (room_id, user_id)
);
CREATE INDEX room_members_by_user ON room_members (user_id);
