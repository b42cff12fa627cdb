-- How the ledger itself served an access (SPEC §14): `pull` or `webhook`; NULL for a decision
-- whose caller served the data. The clustered copy carries it too, so its trigger is replaced.
ALTER TABLE audit_access ADD COLUMN channel TEXT;
ALTER TABLE audit_access_by_shipment ADD COLUMN channel TEXT;
DROP TRIGGER audit_access_by_shipment_copy;
CREATE TRIGGER audit_access_by_shipment_copy AFTER INSERT ON audit_access
WHEN NEW.shipment_id IS NOT NULL
BEGIN
    INSERT INTO audit_access_by_shipment (
        shipment_id, position, decided_at, allowed, reason, partner_id, on_behalf_of,
        shipper_id, carrier, tracking_number, purpose, requested, granted, consent_ids,
        decision_id, channel)
    VALUES (
        NEW.shipment_id, NEW.position, NEW.decided_at, NEW.allowed, NEW.reason, NEW.partner_id,
        NEW.on_behalf_of, NEW.shipper_id, NEW.carrier, NEW.tracking_number, NEW.purpose,
        NEW.requested, NEW.granted, NEW.consent_ids, NEW.decision_id, NEW.channel);
END;
