-- Messages that carry a tracking update (`tracking.updated`, SPEC §14) name its shipment, so
-- that an erasure deletes them with the update, sent or not, and the tracking retention
-- deletes them after the same period (SPEC §12).
ALTER TABLE webhook_outbox ADD COLUMN shipment_id TEXT;
CREATE INDEX webhook_outbox_shipment ON webhook_outbox (shipment_id, occurred_at)
    WHERE shipment_id IS NOT NULL;
