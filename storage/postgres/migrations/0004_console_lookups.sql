-- What the console's search looks things up by, each through an index: a partner's shipment
-- id, an FO's order number, a tracking number (one row per number of a shipment).
CREATE INDEX shipments_external ON shipments (external_id);
CREATE INDEX fulfillment_orders_order_number ON fulfillment_orders (order_number);
CREATE TABLE shipment_tracking (
    tracking_number  TEXT NOT NULL,
    shipment_id      TEXT NOT NULL REFERENCES shipments (id) ON DELETE CASCADE,
    PRIMARY KEY (tracking_number, shipment_id)
);
INSERT INTO shipment_tracking (tracking_number, shipment_id)
    SELECT DISTINCT t, s.id FROM shipments s, json_array_elements_text(s.tracking_numbers::json) t
    WHERE t <> '';
