-- The global log (SPEC §4). One row per event; nothing is ever updated or deleted.
-- position is the global, gapless, commit-ordered index and the Merkle leaf index (SPEC §6).
-- payload is TEXT, not JSONB: the stored bytes are read back exactly as written (JSONB would
-- reorder keys and reformat numbers).
CREATE TABLE events (
    position       BIGINT      PRIMARY KEY CHECK (position >= 0),
    stream_type    TEXT        NOT NULL,
    stream_id      TEXT        NOT NULL,
    stream_version BIGINT      NOT NULL,
    event_type     TEXT        NOT NULL,
    schema_version INTEGER     NOT NULL,
    actor          TEXT        NOT NULL,
    request_id     TEXT        NOT NULL,
    recorded_at    TIMESTAMPTZ NOT NULL,
    payload        TEXT        NOT NULL,
    -- Optimistic concurrency: two writers of one stream version cannot both commit.
    UNIQUE (stream_type, stream_id, stream_version)
);

-- The serialisation point of every writer of every process (docs/adr/0005): each write
-- transaction first takes this row with SELECT … FOR UPDATE, then reads MAX(position) + 1.
-- Writers therefore assign positions and commit one after another, so positions are gapless
-- and in commit order however many processes share the database.
CREATE TABLE log_head (
    id INTEGER PRIMARY KEY CHECK (id = 1)
);
INSERT INTO log_head (id) VALUES (1);

-- Values that must be unique across streams (a carrier's tracking number), claimed in the
-- same transaction as the event that introduces them.
CREATE TABLE unique_claims (
    claim    TEXT   PRIMARY KEY,
    position BIGINT NOT NULL
);

-- Idempotency-Key (SPEC §5.5): written in the same transaction as the events of the first
-- answer, so a retry after a crash finds either both or neither — on any node.
CREATE TABLE idempotency_keys (
    scope          TEXT        NOT NULL,
    key            TEXT        NOT NULL,
    fingerprint    TEXT        NOT NULL,
    first_position BIGINT      NOT NULL,
    last_position  BIGINT      NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (scope, key)
);
