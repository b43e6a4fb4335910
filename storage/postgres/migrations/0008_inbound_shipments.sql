-- Stock sent to a fulfilment network (FBA inbound shipments): the header, its status history
-- and its items (per SKU shipped, received, case quantity), each as last read.
CREATE TABLE inbound_shipments (
    connector       TEXT NOT NULL,
    external_id     TEXT NOT NULL,
    name            TEXT,
    destination     TEXT,
    status          TEXT,
    status_history  TEXT NOT NULL DEFAULT '[]',   -- [{status, at}], oldest first
    items           TEXT NOT NULL DEFAULT '[]',   -- [{sku, shipped, received, case_quantity}]
    header_seen_at  TEXT,                         -- when the header and the items were
    items_seen_at   TEXT,                         -- read: an older read never wins
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,                -- ours: the list's order and updated_since
    PRIMARY KEY (connector, external_id)
);
CREATE INDEX inbound_shipments_updated ON inbound_shipments (updated_at, connector, external_id);
CREATE INDEX inbound_shipments_status ON inbound_shipments (connector, status);
