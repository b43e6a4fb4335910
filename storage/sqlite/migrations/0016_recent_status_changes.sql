-- The console's overview lists the latest status changes: newest first, from this index
-- of status changes alone.
CREATE INDEX timeline_status_changes ON timeline (id) WHERE kind = 'status_changed';
