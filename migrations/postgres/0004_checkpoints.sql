-- Signed checkpoints of the log (SPEC §6): every one is kept. A tree size has one root, so a
-- second checkpoint of the same size (another node, a retry) is the same statement and kept once.
CREATE TABLE checkpoints (
    tree_size BIGINT      PRIMARY KEY,
    root      BYTEA       NOT NULL,
    note      TEXT        NOT NULL,
    signed_at TIMESTAMPTZ NOT NULL
);
