-- One row rewritten by /readyz: a database that can be read but not written is not ready.
CREATE TABLE write_probe (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    probed_at TEXT NOT NULL
);
