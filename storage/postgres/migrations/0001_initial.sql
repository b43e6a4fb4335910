-- The gateway's schema on PostgreSQL: the same tables and meanings as the SQLite backend's
-- after its migration 0010, with what several processes sharing the database need besides:
-- delivery keys unique for every kind of inbox event (de-duplication by constraint, not in
-- memory), and claim columns (owner, lease) on inbox events and outbox messages.
-- Timestamps stay ISO-8601 UTC text with microseconds, as in SQLite, so they compare and
-- sort the same way in both backends; JSON stays text for the same reason.

CREATE SEQUENCE fulfillment_order_seq;  -- creation order, across processes

CREATE TABLE fulfillment_orders (
    id             TEXT PRIMARY KEY,
    seq            BIGINT NOT NULL UNIQUE,
    channel        TEXT,
    order_number   TEXT,
    ship_to        TEXT NOT NULL DEFAULT '{}',
    custom_fields  TEXT NOT NULL DEFAULT '{}',
    request_hash   TEXT NOT NULL,
    status         TEXT NOT NULL,
    cancelled      INTEGER NOT NULL DEFAULT 0,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    flow           TEXT NOT NULL DEFAULT 'api',
    invoice_id     TEXT
);
CREATE INDEX fulfillment_orders_updated ON fulfillment_orders (updated_at, id);
CREATE INDEX fulfillment_orders_status ON fulfillment_orders (status, updated_at, id);

CREATE TABLE fulfillment_order_lines (
    fo_id      TEXT NOT NULL REFERENCES fulfillment_orders (id) ON DELETE CASCADE,
    line_id    TEXT NOT NULL,
    position   INTEGER NOT NULL,
    sku        TEXT NOT NULL,
    requested  INTEGER NOT NULL CHECK (requested > 0),
    PRIMARY KEY (fo_id, line_id)
);

CREATE TABLE fulfillment_order_refs (
    fo_id  TEXT NOT NULL REFERENCES fulfillment_orders (id) ON DELETE CASCADE,
    kind   TEXT NOT NULL,
    value  TEXT NOT NULL,
    PRIMARY KEY (kind, value, fo_id)
);
CREATE INDEX fulfillment_order_refs_fo ON fulfillment_order_refs (fo_id);

CREATE TABLE shipments (
    id                  TEXT PRIMARY KEY,
    source              TEXT NOT NULL,
    external_id         TEXT NOT NULL,
    order_refs          TEXT NOT NULL,
    status              TEXT NOT NULL,
    carrier             TEXT,
    service             TEXT,
    tracking_numbers    TEXT NOT NULL DEFAULT '[]',
    tracking_url        TEXT,
    shipped_at          TEXT,
    partner_updated_at  TEXT NOT NULL,
    recorded_at         TEXT NOT NULL,
    updated_at          TEXT NOT NULL,
    match_state         TEXT NOT NULL DEFAULT 'unmatched',
    match_rule          TEXT,
    unmatched_reason    TEXT,
    candidates          TEXT NOT NULL DEFAULT '[]',
    overshipped         TEXT NOT NULL DEFAULT '{}',
    UNIQUE (source, external_id)
);
CREATE INDEX shipments_unmatched ON shipments (match_state, recorded_at, id);
CREATE INDEX shipments_recorded ON shipments (recorded_at, id);

CREATE TABLE shipment_lines (
    shipment_id      TEXT NOT NULL REFERENCES shipments (id) ON DELETE CASCADE,
    position         INTEGER NOT NULL,
    sku              TEXT NOT NULL,
    quantity         INTEGER NOT NULL,
    partner_line_id  TEXT,
    PRIMARY KEY (shipment_id, position)
);

CREATE TABLE shipment_refs (
    shipment_id  TEXT NOT NULL REFERENCES shipments (id) ON DELETE CASCADE,
    kind         TEXT NOT NULL,
    value        TEXT NOT NULL,
    PRIMARY KEY (kind, value, shipment_id)
);
CREATE INDEX shipment_refs_shipment ON shipment_refs (shipment_id);

CREATE TABLE shipment_matches (
    shipment_id  TEXT NOT NULL REFERENCES shipments (id) ON DELETE CASCADE,
    fo_id        TEXT NOT NULL REFERENCES fulfillment_orders (id) ON DELETE CASCADE,
    PRIMARY KEY (shipment_id, fo_id)
);
CREATE INDEX shipment_matches_fo ON shipment_matches (fo_id, shipment_id);

CREATE TABLE allocations (
    shipment_id  TEXT NOT NULL REFERENCES shipments (id) ON DELETE CASCADE,
    fo_id        TEXT NOT NULL REFERENCES fulfillment_orders (id) ON DELETE CASCADE,
    line_id      TEXT NOT NULL,
    sku          TEXT NOT NULL,
    quantity     INTEGER NOT NULL CHECK (quantity > 0),
    PRIMARY KEY (shipment_id, fo_id, line_id)
);
CREATE INDEX allocations_fo ON allocations (fo_id);

CREATE TABLE timeline (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    fo_id        TEXT NOT NULL REFERENCES fulfillment_orders (id) ON DELETE CASCADE,
    at           TEXT NOT NULL,
    kind         TEXT NOT NULL,
    from_status  TEXT,
    to_status    TEXT,
    detail       TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX timeline_fo ON timeline (fo_id, id);

CREATE TABLE inbox_events (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    connector        TEXT NOT NULL,
    delivery_key     TEXT NOT NULL,
    kind             TEXT NOT NULL,
    headers          TEXT NOT NULL DEFAULT '{}',
    body             BYTEA NOT NULL,
    received_at      TEXT NOT NULL,
    status           TEXT NOT NULL DEFAULT 'pending',
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  TEXT NOT NULL,
    last_error       TEXT,
    processed_at     TEXT,
    owner            TEXT,            -- the process holding its claim
    lease_until      TEXT,            -- until when; an expired lease is claimed again
    -- a delivery repeated, to this replica or another, is stored once
    UNIQUE (connector, kind, delivery_key)
);
CREATE INDEX inbox_pending ON inbox_events (next_attempt_at, id) WHERE status = 'pending';
CREATE INDEX inbox_dead ON inbox_events (id) WHERE status = 'dead';

CREATE VIEW dead_letters AS
SELECT id, connector, delivery_key, kind, received_at, attempts, last_error,
       processed_at AS failed_at
FROM inbox_events WHERE status = 'dead';

CREATE TABLE outbox_messages (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    key           TEXT NOT NULL UNIQUE,
    destination   TEXT NOT NULL,
    kind          TEXT NOT NULL,
    fo_id         TEXT,
    sequence_key  TEXT,
    payload       TEXT NOT NULL,
    status        TEXT NOT NULL DEFAULT 'pending',
    not_before    TEXT NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    last_error    TEXT,
    result        TEXT,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    error_kind    TEXT,
    owner         TEXT,
    lease_until   TEXT
);
CREATE INDEX outbox_due ON outbox_messages (not_before, id) WHERE status = 'pending';
CREATE INDEX outbox_sequence ON outbox_messages (destination, sequence_key, id)
    WHERE status = 'pending';
CREATE INDEX outbox_fo ON outbox_messages (fo_id, id);
CREATE INDEX outbox_dead ON outbox_messages (id) WHERE status = 'dead';

CREATE TABLE feed_state (
    connector       TEXT NOT NULL,
    feed            TEXT NOT NULL,
    cursor          TEXT,
    last_poll_at    TEXT,
    last_result     TEXT NOT NULL DEFAULT '{}',
    last_error      TEXT,
    last_error_at   TEXT,
    last_started_at TEXT,
    owner           TEXT,
    lease_until     TEXT,
    PRIMARY KEY (connector, feed)
);

CREATE TABLE partner_orders (
    connector           TEXT NOT NULL,
    external_id         TEXT NOT NULL,
    order_number        TEXT,
    status              TEXT NOT NULL,
    content             TEXT NOT NULL,
    raw                 TEXT NOT NULL DEFAULT '{}',
    customer_ref        TEXT,
    partner_updated_at  TEXT NOT NULL,
    fo_id               TEXT,
    recorded_at         TEXT NOT NULL,
    updated_at          TEXT NOT NULL,
    PRIMARY KEY (connector, external_id)
);
CREATE INDEX partner_orders_unclaimed ON partner_orders (connector, recorded_at)
    WHERE fo_id IS NULL;

CREATE TABLE partner_records (
    connector    TEXT NOT NULL,
    kind         TEXT NOT NULL,
    external_id  TEXT NOT NULL,
    fields       TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    archived     INTEGER NOT NULL DEFAULT 0,
    recorded_at  TEXT NOT NULL,
    PRIMARY KEY (connector, kind, external_id)
);
CREATE INDEX partner_records_recorded ON partner_records (connector, kind, recorded_at,
                                                          external_id);

CREATE TABLE partner_links (
    fo_id             TEXT NOT NULL REFERENCES fulfillment_orders (id) ON DELETE CASCADE,
    connector         TEXT NOT NULL,
    role              TEXT NOT NULL,
    partner_order_id  TEXT,
    state             TEXT NOT NULL DEFAULT 'open',
    watch_until       TEXT,
    pushed            TEXT NOT NULL DEFAULT '{}',
    last_result       TEXT,
    updated_at        TEXT NOT NULL,
    PRIMARY KEY (fo_id, connector, role)
);
CREATE INDEX partner_links_watch ON partner_links (connector, role, state, fo_id);

CREATE TABLE rate_reservations (
    key    TEXT NOT NULL,
    at     DOUBLE PRECISION NOT NULL,   -- unix seconds
    count  INTEGER NOT NULL
);
CREATE INDEX rate_reservations_key ON rate_reservations (key, at);

CREATE TABLE rate_pauses (
    key    TEXT PRIMARY KEY,
    until  DOUBLE PRECISION NOT NULL
);

CREATE VIEW shipment_records AS
SELECT s.*, COALESCE((SELECT json_agg(json_build_object('sku', l.sku, 'quantity', l.quantity,
                                                        'partner_line_id', l.partner_line_id)
                                      ORDER BY l.position)
                      FROM shipment_lines l WHERE l.shipment_id = s.id), '[]'::json)::text
       AS lines
FROM shipments s;

CREATE VIEW unmatched_shipments AS
SELECT * FROM shipment_records WHERE match_state = 'unmatched' AND status != 'voided';
