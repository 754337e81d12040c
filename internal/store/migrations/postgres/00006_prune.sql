-- Schema version 6 (PostgreSQL): signed audit prune markers
-- (audit.retention, docs/audit.md). Keep in step with
-- ../sqlite/00006_prune.sql. Numbered 6 (not 5) so it never clashes with
-- another branch's version 5.

-- +goose Up
CREATE TABLE audit_prune_markers (
    id        bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    node      text        NOT NULL,
    node_seq  bigint      NOT NULL,
    hash      bytea       NOT NULL,
    time      timestamptz NOT NULL,
    key_id    text        NOT NULL,
    signature bytea       NOT NULL,
    UNIQUE (node, node_seq)
);

-- +goose Down
DROP TABLE audit_prune_markers;
