-- The first schema: fulfillment orders, shipments, allocations, the inbox, cursors.

CREATE TABLE fulfillment_orders (
    id             TEXT PRIMARY KEY,
    seq            INTEGER NOT NULL UNIQUE,
    channel        TEXT,
    order_number   TEXT,
    ship_to        TEXT NOT NULL DEFAULT '{}',
    custom_fields  TEXT NOT NULL DEFAULT '{}',
    request_hash   TEXT NOT NULL,
    status         TEXT NOT NULL,
    cancelled      INTEGER NOT NULL DEFAULT 0,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL
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

-- External references recorded on an FO (its order number, partner order ids): matching rule 2b.
CREATE TABLE fulfillment_order_refs (
    fo_id  TEXT NOT NULL REFERENCES fulfillment_orders (id) ON DELETE CASCADE,
    kind   TEXT NOT NULL,
    value  TEXT NOT NULL,
    PRIMARY KEY (kind, value, fo_id)
);

CREATE TABLE timeline (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    fo_id        TEXT NOT NULL REFERENCES fulfillment_orders (id) ON DELETE CASCADE,
    at           TEXT NOT NULL,
    kind         TEXT NOT NULL,
    from_status  TEXT,
    to_status    TEXT,
    detail       TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX timeline_fo ON timeline (fo_id, id);

-- The latest version of each partner shipment.
CREATE TABLE shipments (
    id                  TEXT PRIMARY KEY,
    source              TEXT NOT NULL,
    external_id         TEXT NOT NULL,
    order_refs          TEXT NOT NULL,
    lines               TEXT NOT NULL,
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

-- Every acknowledged webhook and every polled record, before anything else happens to it.
CREATE TABLE inbox_events (
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
    processed_at     TEXT,
    UNIQUE (connector, delivery_key)
);
CREATE INDEX inbox_due ON inbox_events (status, next_attempt_at, id);

CREATE TABLE poll_state (
    connector     TEXT PRIMARY KEY,
    cursor        TEXT,
    last_poll_at  TEXT,
    last_result   TEXT NOT NULL DEFAULT '{}',
    last_error    TEXT,
    last_error_at TEXT
);
