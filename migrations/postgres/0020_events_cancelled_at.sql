-- A time window's export (SPEC §7 `from`/`to`) takes the decisions it holds from the GDPR
-- projection's time index (0005), and the cancellations of deliveries (SPEC §14) from here: a
-- cancellation is filtered by its own time, which may fall in a window that holds none of its
-- decision's, and the projection keeps no row of it. Keyed by the second of `cancelled_at` as
-- the payload stores it (RFC 3339 in UTC, the payload's first field), compared as bytes (`C`, as
-- SQLite compares text), over cancellations only: a decision's INSERT evaluates the WHERE and
-- adds no entry. The export's exact filter decides on the whole time.
CREATE INDEX events_cancelled_at
    ON events ((substr(payload, strpos(payload, '"cancelled_at":"') + 16, 19)) COLLATE "C", position)
    WHERE event_type = 'TrackingDeliveryCancelled';
