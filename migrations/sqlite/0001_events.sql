-- The global log (SPEC §4). One row per event; nothing is ever updated or deleted.
-- position is the global, gapless, commit-ordered index and the Merkle leaf index (SPEC §6).
CREATE TABLE events (
    position       INTEGER PRIMARY KEY,
    stream_type    TEXT    NOT NULL,
    stream_id      TEXT    NOT NULL,
    stream_version INTEGER NOT NULL,
    event_type     TEXT    NOT NULL,
    schema_version INTEGER NOT NULL,
    actor          TEXT    NOT NULL,
    request_id     TEXT    NOT NULL,
    recorded_at    TEXT    NOT NULL,
    payload        TEXT    NOT NULL,
    -- Optimistic concurrency: two writers of one stream version cannot both commit.
    UNIQUE (stream_type, stream_id, stream_version)
);

-- Values that must be unique across streams (a carrier's tracking number), claimed in the
-- same transaction as the event that introduces them.
CREATE TABLE unique_claims (
    claim    TEXT    PRIMARY KEY,
    position INTEGER NOT NULL
);

-- Idempotency-Key (SPEC §5.5): written in the same transaction as the events of the first
-- answer, so a retry after a crash finds either both or neither.
CREATE TABLE idempotency_keys (
    scope          TEXT    NOT NULL,
    key            TEXT    NOT NULL,
    fingerprint    TEXT    NOT NULL,
    first_position INTEGER NOT NULL,
    last_position  INTEGER NOT NULL,
    created_at     TEXT    NOT NULL,
    PRIMARY KEY (scope, key)
);
