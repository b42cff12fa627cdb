-- Delivering the webhook outbox (SPEC §13, docs/adr/0010). Times are Unix milliseconds.
-- `next_attempt_at`: when the message is due (0: at once). `claimed_until`/`claimed_by`: the
-- node attempting it now holds it until then (a lease longer than the 15 s timeout), so on
-- several nodes each message is attempted by one node at a time; a node that died lets its
-- lease run out and another takes the message over.
ALTER TABLE webhook_outbox ADD COLUMN next_attempt_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE webhook_outbox ADD COLUMN claimed_until BIGINT NOT NULL DEFAULT 0;
ALTER TABLE webhook_outbox ADD COLUMN claimed_by TEXT;
DROP INDEX webhook_outbox_pending;
CREATE INDEX webhook_outbox_due ON webhook_outbox (next_attempt_at) WHERE state = 'pending';

-- Every attempt to deliver a message, as the partner sees it in
-- `GET /v1/webhook-endpoints/{id}/deliveries`: its HTTP status (none when no answer came),
-- what went wrong otherwise, the latency, and when the next attempt is due (none once the
-- message is delivered or given up). No body and no header is kept here.
CREATE TABLE webhook_attempts (
    message_id      TEXT    NOT NULL,
    attempt         INTEGER NOT NULL,
    endpoint_id     TEXT    NOT NULL,
    attempted_at    BIGINT  NOT NULL,
    status          INTEGER,
    error           TEXT,
    latency_ms      BIGINT  NOT NULL,
    next_attempt_at BIGINT,
    node            TEXT    NOT NULL,
    PRIMARY KEY (message_id, attempt)
);
CREATE INDEX webhook_attempts_endpoint ON webhook_attempts (endpoint_id, attempted_at);
