-- Webhook delivery keys are hashes, so a unique index over them puts every insert on a random
-- page, and that page is written to the WAL at every commit: it was the largest single cost
-- of durable intake. Webhook events are only ever inserted by the running gateway, which
-- de-duplicates them against the keys it loads at start and adds as it commits. Polled
-- records, which the `poll` command may insert from another process, stay unique here.

DROP VIEW dead_letters;

CREATE TABLE inbox_events_new (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    connector        TEXT NOT NULL,
    delivery_key     TEXT NOT NULL,
    kind             TEXT NOT NULL,
    headers          TEXT NOT NULL DEFAULT '{}',
    body             BLOB NOT NULL,
    received_at      TEXT NOT NULL,
    status           TEXT NOT NULL DEFAULT 'pending',
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  TEXT NOT NULL,
    last_error       TEXT,
    processed_at     TEXT
);

INSERT INTO inbox_events_new SELECT id, connector, delivery_key, kind, headers, body, received_at,
    status, attempts, next_attempt_at, last_error, processed_at FROM inbox_events;

DROP TABLE inbox_events;

ALTER TABLE inbox_events_new RENAME TO inbox_events;

CREATE UNIQUE INDEX inbox_poll_keys ON inbox_events (connector, delivery_key)
    WHERE kind = 'poll';
CREATE INDEX inbox_pending ON inbox_events (next_attempt_at, id) WHERE status = 'pending';
CREATE INDEX inbox_dead ON inbox_events (id) WHERE status = 'dead';

CREATE VIEW dead_letters AS
SELECT id, connector, delivery_key, kind, received_at, attempts, last_error,
       processed_at AS failed_at
FROM inbox_events WHERE status = 'dead';
