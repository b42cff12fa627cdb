-- Webhook endpoints' signing keys (SPEC §13, docs/adr/0010), beside the log, never in it: the
-- log records each endpoint's public key (`whpk_…`); the secret (`whsk_…`) is kept here,
-- written in the same transaction as the event that made the key (a registration or a
-- rotation, at `position`). A rotation adds a row: the newest key signs, and the one before it
-- too for 24 h after `created_at`.
CREATE TABLE webhook_keys (
    endpoint_id TEXT   NOT NULL,
    public_key  TEXT   NOT NULL,
    secret      TEXT   NOT NULL,
    position    BIGINT NOT NULL,
    PRIMARY KEY (endpoint_id, position)
);
