-- The carrier authorizations a decision rested on or names, and the DPA an allowed read relied
-- on (SPEC §16), so that a data subject's access report and an officer's view show the legal
-- ground of every intermediary's read. Rows projected before authorizations existed rested on
-- none: NULL reads as none. The clustered copy carries them too, so its trigger is replaced.
ALTER TABLE audit_access ADD COLUMN authorization_ids TEXT;
ALTER TABLE audit_access ADD COLUMN dpa_id TEXT;
ALTER TABLE audit_access_by_shipment ADD COLUMN authorization_ids TEXT;
ALTER TABLE audit_access_by_shipment ADD COLUMN dpa_id TEXT;
DROP TRIGGER audit_access_by_shipment_copy;
CREATE TRIGGER audit_access_by_shipment_copy AFTER INSERT ON audit_access
WHEN NEW.shipment_id IS NOT NULL
BEGIN
    INSERT INTO audit_access_by_shipment (
        shipment_id, position, decided_at, allowed, reason, partner_id, on_behalf_of,
        shipper_id, carrier, tracking_number, purpose, requested, granted, consent_ids,
        decision_id, channel, authorization_ids, dpa_id)
    VALUES (
        NEW.shipment_id, NEW.position, NEW.decided_at, NEW.allowed, NEW.reason, NEW.partner_id,
        NEW.on_behalf_of, NEW.shipper_id, NEW.carrier, NEW.tracking_number, NEW.purpose,
        NEW.requested, NEW.granted, NEW.consent_ids, NEW.decision_id, NEW.channel,
        NEW.authorization_ids, NEW.dpa_id);
END;
