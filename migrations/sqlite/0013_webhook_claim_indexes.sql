-- Claiming due webhook messages (SPEC §13, docs/adr/0010) without ranking every pending row:
-- each endpoint's pending rows in the order they are attempted (the claim skips from one
-- endpoint to the next through it and reads each one's first few due rows), and the rows a
-- node holds a lease on (its messages in flight, counted per endpoint at every claim). A
-- recorded attempt sets `claimed_until` back to 0, so the second index holds only the leases.
CREATE INDEX webhook_outbox_endpoint_due
    ON webhook_outbox (endpoint_id, next_attempt_at, position, message_id)
    WHERE state = 'pending';
CREATE INDEX webhook_outbox_leased
    ON webhook_outbox (claimed_by, endpoint_id)
    WHERE state = 'pending' AND claimed_until > 0;
