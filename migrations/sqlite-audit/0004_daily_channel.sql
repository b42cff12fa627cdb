-- Allowed reads per UTC day, partner and channel (SPEC §14: `webhook` for the ledger's own
-- deliveries and the subscriptions decided for them, `pull` for a partner's tracking pulls), so
-- that the RoPA shows how each partner received data without scanning a month of decisions.
-- Filled from the decisions already projected; the projection adds to it as it follows the log.
CREATE TABLE audit_daily_channel (
    day        BIGINT  NOT NULL,
    partner_id TEXT    NOT NULL,
    channel    TEXT    NOT NULL,
    decisions  BIGINT  NOT NULL,
    PRIMARY KEY (day, partner_id, channel)
);
INSERT INTO audit_daily_channel (day, partner_id, channel, decisions)
SELECT decided_at / 86400000000, partner_id, channel, COUNT(*)
FROM audit_access
WHERE allowed <> 0 AND channel IS NOT NULL
GROUP BY decided_at / 86400000000, partner_id, channel;
