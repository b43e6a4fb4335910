-- A partner's request budget, shared by every process calling it: reservations of a few
-- requests each, counted over the budget's window, and a pause a 429 imposed on everyone.
CREATE TABLE rate_reservations (
    key    TEXT NOT NULL,
    at     REAL NOT NULL,      -- unix seconds
    count  INTEGER NOT NULL
);
CREATE INDEX rate_reservations_key ON rate_reservations (key, at);

CREATE TABLE rate_pauses (
    key    TEXT PRIMARY KEY,
    until  REAL NOT NULL      -- unix seconds
);
