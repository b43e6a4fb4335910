-- Every reference a shipment carries, so an FO created later finds its unmatched shipments
-- by index (DESIGN rule 5) instead of scanning the whole unmatched queue.

CREATE TABLE shipment_refs (
    shipment_id  TEXT NOT NULL REFERENCES shipments (id) ON DELETE CASCADE,
    kind         TEXT NOT NULL,
    value        TEXT NOT NULL,
    PRIMARY KEY (kind, value, shipment_id)
);
CREATE INDEX shipment_refs_shipment ON shipment_refs (shipment_id);

INSERT OR IGNORE INTO shipment_refs (shipment_id, kind, value)
SELECT s.id, json_extract(r.value, '$.kind'), json_extract(r.value, '$.value')
FROM shipments s, json_each(s.order_refs) r;
