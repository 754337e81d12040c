-- Schema version 1 (SQLite). Keep in step with ../postgres/00001_init.sql:
-- same tables, columns and indexes; only the types differ. Times are
-- INTEGER microseconds since the Unix epoch (UTC), which round-trip exactly
-- and sort as numbers.

-- +goose Up
CREATE TABLE connections (
    name       TEXT    NOT NULL PRIMARY KEY,
    type       TEXT    NOT NULL,
    address    TEXT    NOT NULL DEFAULT '',
    database   TEXT    NOT NULL DEFAULT '',
    username   TEXT    NOT NULL DEFAULT '',
    secret     BLOB,
    tls_mode   TEXT    NOT NULL DEFAULT '',
    tls_ca     TEXT    NOT NULL DEFAULT '',
    access     TEXT    NOT NULL DEFAULT '[]',
    source     TEXT    NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

-- seq is assigned by the store (max+1 under the write lock), never by an
-- autoincrement, so it stays gap-free: a rolled-back batch consumes nothing.
CREATE TABLE audit_events (
    seq        INTEGER NOT NULL PRIMARY KEY,
    time       INTEGER NOT NULL,
    type       TEXT    NOT NULL,
    session_id TEXT    NOT NULL DEFAULT '',
    issuer     TEXT    NOT NULL DEFAULT '',
    subject    TEXT    NOT NULL DEFAULT '',
    connection TEXT    NOT NULL DEFAULT '',
    decision   TEXT    NOT NULL DEFAULT '',
    reason     TEXT    NOT NULL DEFAULT '',
    statement  TEXT    NOT NULL DEFAULT '',
    detail     TEXT
);

-- Indexes for the selective audit.Filter fields, each ending in seq so "most
-- recent N matching" is an index range scan in seq order. type and decision
-- have a handful of values each: an index on them would cost every insert
-- (the data path's audit throughput) and save little, so they filter the
-- seq-ordered scan instead.
CREATE INDEX audit_events_subject    ON audit_events (subject, seq);
CREATE INDEX audit_events_connection ON audit_events (connection, seq);
CREATE INDEX audit_events_session    ON audit_events (session_id, seq);
CREATE INDEX audit_events_time       ON audit_events (time);

-- +goose Down
DROP TABLE audit_events;
DROP TABLE connections;
