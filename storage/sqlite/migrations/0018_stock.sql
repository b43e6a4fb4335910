-- Transfer orders (an inbound shipment reconciled into a sales order and a purchase order),
-- the receipts and discrepancies read from a fulfilment network, and the inventory ledger.
-- the gateway's own word for where a shipment is (planned, open, closed, cancelled) beside
-- the partner's status, and when a read first showed it closed
ALTER TABLE inbound_shipments ADD COLUMN stage TEXT;
ALTER TABLE inbound_shipments ADD COLUMN closed_seen_at TEXT;

CREATE TABLE transfer_orders (
    id                     TEXT PRIMARY KEY,
    connector              TEXT NOT NULL,
    inbound_shipment_id    TEXT NOT NULL,
    fo_id                  TEXT NOT NULL,
    purchase_order_id      TEXT NOT NULL,
    source_location        TEXT NOT NULL,
    destination_location   TEXT NOT NULL,
    status                 TEXT NOT NULL,               -- reconciled, shipped, received, closed
    po_status              TEXT NOT NULL,               -- open, partially_received, received, closed
    lines                  TEXT NOT NULL,               -- [{sku, quantity, received}]
    carrier                TEXT,
    tracking_numbers       TEXT NOT NULL DEFAULT '[]',
    shipped_at             TEXT,
    closed_at              TEXT,
    created_at             TEXT NOT NULL,
    updated_at             TEXT NOT NULL,
    UNIQUE (connector, inbound_shipment_id)             -- reconciling twice: the same one
);

CREATE TABLE inbound_receipts (
    id                   TEXT PRIMARY KEY,
    connector            TEXT NOT NULL,
    inbound_shipment_id  TEXT NOT NULL,
    sku                  TEXT NOT NULL,
    kind                 TEXT NOT NULL,   -- receipt, decrease, over_receipt, unplanned_sku, shortfall
    quantity             INTEGER NOT NULL,
    received_before      INTEGER NOT NULL,
    received_after       INTEGER NOT NULL,
    state                TEXT NOT NULL,   -- held, applied, reported
    transfer_order_id    TEXT,
    observed_at          TEXT NOT NULL,
    recorded_at          TEXT NOT NULL,
    applied_at           TEXT
);
CREATE INDEX inbound_receipts_shipment ON inbound_receipts (connector, inbound_shipment_id, recorded_at, id);
CREATE INDEX inbound_receipts_state ON inbound_receipts (state, recorded_at, id);

-- every change, per location and SKU; inventory_levels is their running sum
CREATE TABLE inventory_movements (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    location    TEXT NOT NULL,
    sku         TEXT NOT NULL,
    on_hand     INTEGER NOT NULL,
    in_transit  INTEGER NOT NULL,
    reason      TEXT NOT NULL,
    reference   TEXT NOT NULL,
    at          TEXT NOT NULL
);
CREATE INDEX inventory_movements_location ON inventory_movements (location, sku, id);

CREATE TABLE inventory_levels (
    location    TEXT NOT NULL,
    sku         TEXT NOT NULL,
    on_hand     INTEGER NOT NULL,
    in_transit  INTEGER NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (location, sku)
);
