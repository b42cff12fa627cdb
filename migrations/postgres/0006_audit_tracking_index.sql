-- By carrier + tracking number only the decisions about no registered shipment (asked by a
-- tracking number nobody had registered): a registered parcel's rows are found by its shipment
-- id through audit_shipment (docs/adr/0006), so that each decision takes no second random index
-- insertion.
DROP INDEX IF EXISTS audit_access_tracking;
CREATE INDEX audit_access_tracking ON audit_access (carrier, tracking_number, position)
    WHERE shipment_id IS NULL;
