-- Why a dead letter was given up, said by whoever discarded it.
ALTER TABLE inbox_events ADD COLUMN discard_reason TEXT;
ALTER TABLE outbox_messages ADD COLUMN discard_reason TEXT;
