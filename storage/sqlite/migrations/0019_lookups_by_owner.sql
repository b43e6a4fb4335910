-- Two tables read and rewritten by the row they belong to had no index on it: a shipment's
-- tracking numbers (replaced whenever the shipment is recorded again, and deleted with it) and
-- an FO's order references (read whenever one of its shipments is reconciled). Each such
-- statement scanned the whole table: at 2,000 shipments the tracking delete alone was 69 % of
-- SQLite's work per webhook, and the cost grew with every shipment and FO stored.
-- tests/test_query_plans.py checks that every foreign key leads an index.
CREATE INDEX shipment_tracking_shipment ON shipment_tracking (shipment_id);
CREATE INDEX fulfillment_order_refs_fo ON fulfillment_order_refs (fo_id);
