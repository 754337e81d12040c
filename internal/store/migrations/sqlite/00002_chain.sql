-- Schema version 2 (SQLite): the audit hash chain and signed checkpoints
-- (docs/audit.md). Keep in step with ../postgres/00002_chain.sql.
-- Events stored before this version keep node '' and node_seq 0: they are
-- outside every chain.

-- +goose Up
ALTER TABLE audit_events ADD COLUMN node      TEXT    NOT NULL DEFAULT '';
ALTER TABLE audit_events ADD COLUMN node_seq  INTEGER NOT NULL DEFAULT 0;
ALTER TABLE audit_events ADD COLUMN prev_hash BLOB;
ALTER TABLE audit_events ADD COLUMN hash      BLOB;

-- Finds a node's chain head on startup, and refuses a second writer of the
-- same chain (two gateways configured with one audit.node) instead of
-- letting the chain fork.
CREATE UNIQUE INDEX audit_events_chain ON audit_events (node, node_seq) WHERE node_seq > 0;

CREATE TABLE audit_checkpoints (
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
DROP TABLE audit_checkpoints;
DROP INDEX audit_events_chain;
ALTER TABLE audit_events DROP COLUMN hash;
ALTER TABLE audit_events DROP COLUMN prev_hash;
ALTER TABLE audit_events DROP COLUMN node_seq;
ALTER TABLE audit_events DROP COLUMN node;
