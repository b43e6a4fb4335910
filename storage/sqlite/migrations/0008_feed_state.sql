-- Each connector polls through named feeds, each with its own cursor, and a run of a feed is
-- claimed by one process at a time (owner, lease_until). Before feeds every connector had one
-- poll; the only connector type then calls that feed "shipments".

CREATE TABLE feed_state (
    connector       TEXT NOT NULL,
    feed            TEXT NOT NULL,
    cursor          TEXT,
    last_poll_at    TEXT,
    last_result     TEXT NOT NULL DEFAULT '{}',
    last_error      TEXT,
    last_error_at   TEXT,
    last_started_at TEXT,
    owner           TEXT,
    lease_until     TEXT,
    PRIMARY KEY (connector, feed)
);
INSERT INTO feed_state (connector, feed, cursor, last_poll_at, last_result, last_error,
                        last_error_at)
    SELECT connector, 'shipments', cursor, last_poll_at, last_result, last_error, last_error_at
    FROM poll_state;
DROP TABLE poll_state;
