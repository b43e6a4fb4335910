-- A shipment's tracking numbers are replaced by shipment id whenever the shipment is recorded
-- again, and deleted with it: without an index on it each was a scan of every tracking number
-- stored. (The SQLite schema lacked the same index, and one on an FO's order references, which
-- this schema has had from the start.) tests/test_query_plans.py checks that every foreign
-- key leads an index.
CREATE INDEX shipment_tracking_shipment ON shipment_tracking (shipment_id);
