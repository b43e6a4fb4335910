-- An operator's pauses: a feed that is not polled, a destination nothing is sent to (its
-- messages wait, in order), until resumed; who paused it and when.
ALTER TABLE feed_state ADD COLUMN paused_by TEXT;
ALTER TABLE feed_state ADD COLUMN paused_at TEXT;
CREATE TABLE paused_destinations (
    destination  TEXT PRIMARY KEY,
    paused_by    TEXT NOT NULL,
    paused_at    TEXT NOT NULL
);
