-- The durable outbox of partner webhooks (SPEC §13, docs/adr/0010): one row per message and
-- endpoint, written in the same transaction as the event that causes it (a crash never loses
-- nor invents one). `position` is that event's, stamped by the commit; `data` is the message's
-- data without it; the body is rendered from the row, the same bytes at every attempt.
CREATE TABLE webhook_outbox (
    message_id      TEXT    PRIMARY KEY,
    endpoint_id     TEXT    NOT NULL,
    event_type      TEXT    NOT NULL,
    -- RFC 3339: the message body's `timestamp`, the time of the event.
    occurred_at     TEXT    NOT NULL,
    position        BIGINT  NOT NULL,
    data            TEXT    NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    -- pending, delivered or failed
    state           TEXT    NOT NULL DEFAULT 'pending'
);
CREATE INDEX webhook_outbox_endpoint ON webhook_outbox (endpoint_id, position);
CREATE INDEX webhook_outbox_pending ON webhook_outbox (state, position) WHERE state = 'pending';
