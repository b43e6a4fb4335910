-- Index only the inbox rows anything looks for: pending ones (the worker) and dead ones (the
-- dead-letter list). Processed events, nearly all rows in time, then cost no index upkeep.

DROP INDEX IF EXISTS inbox_due;
CREATE INDEX inbox_pending ON inbox_events (next_attempt_at, id) WHERE status = 'pending';
CREATE INDEX inbox_dead ON inbox_events (id) WHERE status = 'dead';

-- The API lists shipments oldest first.
CREATE INDEX shipments_recorded ON shipments (recorded_at, id);
