-- One parcel's access history, stored together (docs/adr/0006). audit_access keeps its rows in
-- log order, so the ~10 decisions about one parcel sit on ~10 pages far apart, and its shipment
-- index pointed at each: a history asked about a parcel nobody read lately cost ten random page
-- reads, and on a disk whose reads stall now and then that was the p99 (BENCHMARKS.md). Here
-- the same rows are clustered by (shipment_id, position): a WITHOUT ROWID table is a B-tree on
-- its primary key, holding the whole row in its leaves, so a parcel's history is one leaf (two
-- at a page boundary) under interior pages that carry only the short key. A covering index
-- would hold the same leaves, but SQLite copies an index's whole entry into its interior pages:
-- a quarter of the fan-out, more levels, more pages to miss.
--
-- audit_access's other indexes (partner, shipper, time, unregistered tracking numbers) keep
-- serving the other filters; its shipment index is dropped, since this table answers that.
-- The rows are copied by a trigger, in the transaction that writes audit_access, so the two
-- never disagree and the projector writes one INSERT as on PostgreSQL (whose planner reads a
-- heap by its index and needs no second copy).
CREATE TABLE audit_access_by_shipment (
    shipment_id     TEXT    NOT NULL,
    position        INTEGER NOT NULL,
    decided_at      INTEGER NOT NULL,
    allowed         INTEGER NOT NULL,
    reason          TEXT,
    partner_id      TEXT    NOT NULL,
    on_behalf_of    TEXT,
    shipper_id      TEXT,
    carrier         TEXT,
    tracking_number TEXT,
    purpose         TEXT    NOT NULL,
    requested       TEXT    NOT NULL,
    granted         TEXT    NOT NULL,
    consent_ids     TEXT    NOT NULL,
    decision_id     TEXT    NOT NULL,
    PRIMARY KEY (shipment_id, position)
) WITHOUT ROWID;

-- Rows already projected, copied in key order (appending to the B-tree, not splitting it).
INSERT INTO audit_access_by_shipment (
    shipment_id, position, decided_at, allowed, reason, partner_id, on_behalf_of, shipper_id,
    carrier, tracking_number, purpose, requested, granted, consent_ids, decision_id)
SELECT shipment_id, position, decided_at, allowed, reason, partner_id, on_behalf_of, shipper_id,
       carrier, tracking_number, purpose, requested, granted, consent_ids, decision_id
FROM audit_access
WHERE shipment_id IS NOT NULL
ORDER BY shipment_id, position;

CREATE TRIGGER audit_access_by_shipment_copy AFTER INSERT ON audit_access
WHEN NEW.shipment_id IS NOT NULL
BEGIN
    INSERT INTO audit_access_by_shipment (
        shipment_id, position, decided_at, allowed, reason, partner_id, on_behalf_of,
        shipper_id, carrier, tracking_number, purpose, requested, granted, consent_ids,
        decision_id)
    VALUES (
        NEW.shipment_id, NEW.position, NEW.decided_at, NEW.allowed, NEW.reason, NEW.partner_id,
        NEW.on_behalf_of, NEW.shipper_id, NEW.carrier, NEW.tracking_number, NEW.purpose,
        NEW.requested, NEW.granted, NEW.consent_ids, NEW.decision_id);
END;

DROP INDEX audit_access_shipment;

-- A DSAR finds the subject's parcels by recipient_ref or carrier + tracking number: these
-- indexes now hold every column it reads, so the look-up never visits the table's pages.
DROP INDEX audit_shipment_tracking;
CREATE INDEX audit_shipment_tracking ON audit_shipment (
    carrier, tracking_number, shipment_id, shipper_id, destination_country, recipient_ref,
    position);
DROP INDEX audit_shipment_recipient;
CREATE INDEX audit_shipment_recipient ON audit_shipment (
    recipient_ref, shipment_id, shipper_id, carrier, tracking_number, destination_country,
    position) WHERE recipient_ref IS NOT NULL;
