-- What kind of failure an outbound message last had, as its own column: code reads this,
-- never the text (a rejected push never reached the partner's books; any other may have).
ALTER TABLE outbox_messages ADD COLUMN error_kind TEXT;
UPDATE outbox_messages SET error_kind = substr(last_error, 1, instr(last_error, ':') - 1)
    WHERE last_error IS NOT NULL AND instr(last_error, ':') > 0;
