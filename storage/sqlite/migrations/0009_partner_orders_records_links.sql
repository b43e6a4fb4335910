-- Orders placed at partners (the latest version of each), partners' own records, and the
-- links between an FO and every partner it touches.

CREATE TABLE partner_orders (
    connector           TEXT NOT NULL,
    external_id         TEXT NOT NULL,
    order_number        TEXT,
    status              TEXT NOT NULL,            -- open, cancelled, closed
    content             TEXT NOT NULL,            -- lines and ship_to, as the FO fixed them
    raw                 TEXT NOT NULL DEFAULT '{}',
    customer_ref        TEXT,
    partner_updated_at  TEXT NOT NULL,
    fo_id               TEXT,                     -- NULL: no channel takes this connector's orders
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
    updated_at   TEXT NOT NULL,                   -- the partner's
    archived     INTEGER NOT NULL DEFAULT 0,
    recorded_at  TEXT NOT NULL,                   -- ours: the list's order and updated_since
    PRIMARY KEY (connector, kind, external_id)
);
CREATE INDEX partner_records_recorded ON partner_records (connector, kind, recorded_at,
                                                          external_id);

CREATE TABLE partner_links (
    fo_id             TEXT NOT NULL REFERENCES fulfillment_orders (id) ON DELETE CASCADE,
    connector         TEXT NOT NULL,
    role              TEXT NOT NULL,              -- origin, fulfiller
    partner_order_id  TEXT,
    state             TEXT NOT NULL DEFAULT 'open',  -- open, complete, watching
    watch_until       TEXT,
    pushed            TEXT NOT NULL DEFAULT '{}', -- per shipment id: the partner's id for it
    last_result       TEXT,
    updated_at        TEXT NOT NULL,
    PRIMARY KEY (fo_id, connector, role)
);
CREATE INDEX partner_links_watch ON partner_links (connector, role, state, fo_id);
