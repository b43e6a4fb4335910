-- The outbox: every outbound call (a partner push, an event delivery) is a row written in the
-- same transaction as the change that caused it, and sent by the dispatcher from here.

CREATE TABLE outbox_messages (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    key           TEXT NOT NULL UNIQUE,           -- makes enqueueing idempotent
    destination   TEXT NOT NULL,                  -- "connector:<name>" or "subscriber:<name>"
    kind          TEXT NOT NULL,                  -- push_order, cancel_order, push_fulfillment, event
    fo_id         TEXT,
    sequence_key  TEXT,                           -- messages sharing it go out in id order
    payload       TEXT NOT NULL,
    status        TEXT NOT NULL DEFAULT 'pending',  -- pending, sent, cancelled, dead
    not_before    TEXT NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    last_error    TEXT,
    result        TEXT,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);
CREATE INDEX outbox_due ON outbox_messages (not_before, id) WHERE status = 'pending';
CREATE INDEX outbox_sequence ON outbox_messages (destination, sequence_key, id)
    WHERE status = 'pending';
CREATE INDEX outbox_fo ON outbox_messages (fo_id, id);
CREATE INDEX outbox_dead ON outbox_messages (id) WHERE status = 'dead';

-- How an FO entered: "api" (sales order first) or "invoice_first" with the invoice's id.
ALTER TABLE fulfillment_orders ADD COLUMN flow TEXT NOT NULL DEFAULT 'api';
ALTER TABLE fulfillment_orders ADD COLUMN invoice_id TEXT;
