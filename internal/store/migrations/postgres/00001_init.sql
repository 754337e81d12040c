-- Schema version 1 (PostgreSQL). Keep in step with ../sqlite/00001_init.sql:
-- same tables, columns and indexes; only the types differ. timestamptz has
-- microsecond precision, the precision the store normalises times to.
-- detail is text, not jsonb, so the exact bytes round-trip (jsonb would
-- reorder keys, which would break hashing the stored events later).

-- +goose Up
CREATE TABLE connections (
    name       text        NOT NULL PRIMARY KEY,
    type       text        NOT NULL,
    address    text        NOT NULL DEFAULT '',
    database   text        NOT NULL DEFAULT '',
    username   text        NOT NULL DEFAULT '',
    secret     bytea,
    tls_mode   text        NOT NULL DEFAULT '',
    tls_ca     text        NOT NULL DEFAULT '',
    access     text        NOT NULL DEFAULT '[]',
    source     text        NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);

-- seq is assigned by the store (max+1 under a transaction-level advisory
-- lock), never by a sequence, so it stays gap-free across nodes: a
-- rolled-back batch consumes nothing.
CREATE TABLE audit_events (
    seq        bigint      NOT NULL PRIMARY KEY,
    time       timestamptz NOT NULL,
    type       text        NOT NULL,
    session_id text        NOT NULL DEFAULT '',
    issuer     text        NOT NULL DEFAULT '',
    subject    text        NOT NULL DEFAULT '',
    connection text        NOT NULL DEFAULT '',
    decision   text        NOT NULL DEFAULT '',
    reason     text        NOT NULL DEFAULT '',
    statement  text        NOT NULL DEFAULT '',
    detail     text
);

CREATE INDEX audit_events_subject    ON audit_events (subject, seq);
CREATE INDEX audit_events_connection ON audit_events (connection, seq);
CREATE INDEX audit_events_session    ON audit_events (session_id, seq);
CREATE INDEX audit_events_time       ON audit_events (time);

-- +goose Down
DROP TABLE audit_events;
DROP TABLE connections;
