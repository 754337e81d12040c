-- Schema version 4 (sqlite): time-bound access grants (issue 4). Keep in step
-- with the other dialect's 00004_grants.sql. The grant is a JSON document
-- (internal/approval.Grant); the columns beside it are what lists filter on.

-- +goose Up
CREATE TABLE grants (
    id         TEXT    NOT NULL PRIMARY KEY,
    status     TEXT    NOT NULL,
    connection TEXT    NOT NULL DEFAULT '',
    subject    TEXT    NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    body       TEXT NOT NULL
);
CREATE INDEX grants_status  ON grants (status, created_at);
CREATE INDEX grants_created ON grants (created_at);

-- +goose Down
DROP TABLE grants;
