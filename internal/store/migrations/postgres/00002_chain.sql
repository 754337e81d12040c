-- Schema version 2 (PostgreSQL): the audit hash chain and signed checkpoints
-- (docs/audit.md). Keep in step with ../sqlite/00002_chain.sql.
-- Events stored before this version keep node '' and node_seq 0: they are
-- outside every chain.

-- +goose Up
ALTER TABLE audit_events ADD COLUMN node      text   NOT NULL DEFAULT '';
ALTER TABLE audit_events ADD COLUMN node_seq  bigint NOT NULL DEFAULT 0;
ALTER TABLE audit_events ADD COLUMN prev_hash bytea;
ALTER TABLE audit_events ADD COLUMN hash      bytea;

-- Finds a node's chain head on startup, and refuses a second writer of the
-- same chain (two gateways configured with one audit.node) instead of
-- letting the chain fork.
CREATE UNIQUE INDEX audit_events_chain ON audit_events (node, node_seq) WHERE node_seq > 0;

CREATE TABLE audit_checkpoints (
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
DROP TABLE audit_checkpoints;
DROP INDEX audit_events_chain;
ALTER TABLE audit_events DROP COLUMN hash;
ALTER TABLE audit_events DROP COLUMN prev_hash;
ALTER TABLE audit_events DROP COLUMN node_seq;
ALTER TABLE audit_events DROP COLUMN node;
