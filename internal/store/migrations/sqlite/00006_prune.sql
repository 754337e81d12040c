-- Schema version 6 (SQLite): signed audit prune markers (audit.retention,
-- docs/audit.md). Keep in step with ../postgres/00006_prune.sql. Numbered 6
-- (not 5) so it never clashes with another branch's version 5.

-- +goose Up
CREATE TABLE audit_prune_markers (
    id        INTEGER NOT NULL PRIMARY KEY,
    node      TEXT    NOT NULL,
    node_seq  INTEGER NOT NULL,
    hash      BLOB    NOT NULL,
    time      INTEGER NOT NULL,
    key_id    TEXT    NOT NULL,
    signature BLOB    NOT NULL,
    UNIQUE (node, node_seq)
);

-- +goose Down
DROP TABLE audit_prune_markers;
