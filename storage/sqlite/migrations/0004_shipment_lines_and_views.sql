-- Shipment lines get their own table; the unmatched queue and the dead letters get views, so
-- each is one name to query while staying a state of the row it describes (no dual writes).

CREATE TABLE shipment_lines (
    shipment_id      TEXT NOT NULL REFERENCES shipments (id) ON DELETE CASCADE,
    position         INTEGER NOT NULL,
    sku              TEXT NOT NULL,
    quantity         INTEGER NOT NULL,
    partner_line_id  TEXT,
    PRIMARY KEY (shipment_id, position)
);

INSERT INTO shipment_lines (shipment_id, position, sku, quantity, partner_line_id)
SELECT s.id, CAST(l.key AS INTEGER), json_extract(l.value, '$.sku'),
       json_extract(l.value, '$.quantity'), json_extract(l.value, '$.partner_line_id')
FROM shipments s, json_each(s.lines) l;

ALTER TABLE shipments DROP COLUMN lines;

-- A shipment with its lines as JSON, in line order: what every read of shipments uses.
CREATE VIEW shipment_records AS
SELECT s.*, (SELECT json_group_array(json_object('sku', l.sku, 'quantity', l.quantity,
                                                 'partner_line_id', l.partner_line_id))
             FROM (SELECT * FROM shipment_lines WHERE shipment_id = s.id ORDER BY position) l
            ) AS lines
FROM shipments s;

CREATE VIEW unmatched_shipments AS
SELECT * FROM shipment_records WHERE match_state = 'unmatched' AND status != 'voided';

CREATE VIEW dead_letters AS
SELECT id, connector, delivery_key, kind, received_at, attempts, last_error,
       processed_at AS failed_at
FROM inbox_events WHERE status = 'dead';
