-- Schema version 3 (postgres): approval reviews (issue 4). Keep in step with the
-- other dialect's 00003_reviews.sql. The review itself is a JSON document
-- (internal/approval.Review); the columns beside it are what lists filter on.

-- +goose Up
CREATE TABLE reviews (
    id         TEXT    NOT NULL PRIMARY KEY,
    status     TEXT    NOT NULL,
    connection TEXT    NOT NULL DEFAULT '',
    subject    TEXT    NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    body       JSONB NOT NULL
);
CREATE INDEX reviews_status  ON reviews (status, created_at);
CREATE INDEX reviews_created ON reviews (created_at);

-- +goose Down
DROP TABLE reviews;
