-- A meeting's chat, kept so that someone who joins late can read what was
-- said. Messages travel live as LiveKit data packets (topic "chat"); the
-- sender also hands each one here, under an id of its own making, so a
-- message that arrives both ways is shown once.
CREATE TABLE chat_messages (
    room_id TEXT NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    id TEXT NOT NULL,
    identity TEXT NOT NULL,
    name TEXT NOT NULL,
    body TEXT NOT NULL,
    -- Milliseconds since the epoch, as the app's server saw it.
    sent_ms BIGINT NOT NULL,
    PRIMARY KEY (room_id, id)
);
CREATE INDEX chat_messages_by_time ON chat_messages (room_id, sent_ms);
