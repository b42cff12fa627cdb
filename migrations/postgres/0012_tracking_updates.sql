-- The carrier's tracking updates (SPEC §14): personal data, so kept here beside the log, never
-- in it (SPEC §12); deleted in an erasure's commit, and after `serve
-- --tracking-retention-days` (default 90) from their receipt. `details` holds the optional
-- parts as JSON (description, location, proof_of_delivery, recipient_contact). One update per
-- shipment, status and time: a gateway that sends one again changes nothing.
CREATE TABLE tracking_updates (
    update_id   TEXT    PRIMARY KEY,
    shipment_id TEXT    NOT NULL,
    status      TEXT    NOT NULL,
    -- RFC 3339 UTC with microseconds: sorts as time.
    occurred_at TEXT    NOT NULL,
    -- Unix milliseconds.
    received_at BIGINT  NOT NULL,
    details     TEXT    NOT NULL
);
CREATE UNIQUE INDEX tracking_updates_shipment ON tracking_updates (shipment_id, occurred_at, status);
CREATE INDEX tracking_updates_received ON tracking_updates (received_at);
