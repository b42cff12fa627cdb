-- Personal data beside the log, never in it (SPEC §12, docs/adr/0008). A leaf holds a
-- commitment {"commitment": base64 SHA-256(salt ‖ value)} where its event had a personal value;
-- the value and its salt (the opening) are kept here, written in the same transaction as the
-- event, keyed by the event's position and the JSON pointer of the commitment in the leaf. An
-- erasure deletes the rows of the streams it names; every proof stands, since no leaf changes.
CREATE TABLE openings (
    position    BIGINT NOT NULL,
    pointer     TEXT   NOT NULL,
    value       TEXT   NOT NULL,
    salt        TEXT   NOT NULL,
    -- The stream of the event: what an erasure deletes by (a shipment, or a consent or
    -- request scoped to one).
    stream_type TEXT   NOT NULL,
    stream_id   TEXT   NOT NULL,
    PRIMARY KEY (position, pointer)
);
CREATE INDEX openings_stream ON openings (stream_type, stream_id);
-- A subject erasure finds a recipient's shipments by the reference itself; the entry goes with
-- the row.
CREATE INDEX openings_recipient ON openings (value)
    WHERE pointer = '/payload/ShipmentRegistered/recipient_ref';
-- An erasure also erases the number from denials of unknown parcels that asked for it.
CREATE INDEX openings_asked ON openings (value)
    WHERE pointer = '/payload/TrackingAccessDenied/tracking_number';

-- Recipient references erased, as digests (hex SHA-256 of a label and the reference), with the
-- position of the PersonalDataErased event: a later subject access request for the reference
-- answers that it was erased, when and by which record (SPEC §12).
CREATE TABLE erased_subjects (
    subject_digest TEXT   NOT NULL,
    position       BIGINT NOT NULL,
    PRIMARY KEY (subject_digest, position)
);
