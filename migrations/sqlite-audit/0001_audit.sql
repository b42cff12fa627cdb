-- The GDPR audit projection in a file of its own beside the log (ledger.db → ledger.audit.db,
-- docs/adr/0006): its pages are written in their own transactions, under that file's write
-- lock, never the log's, so catching up never holds back the decision group commit.
-- The tables are as migrations/sqlite/0005_audit.sql first made them in the log's file, which
-- 0006 there drops.

-- GDPR audit views (issue 6, docs/adr/0006): projections of the log written by a catch-up task
-- in its own transactions, never inside the decision group commit. Rebuildable from the log.
-- Times are microseconds since the Unix epoch (UTC), so range filters compare integers on both
-- backends. Lists of values (categories, consent ids) are comma-separated.

-- The position the audit projection has applied up to (exclusive): every event before it is in.
CREATE TABLE audit_projection (
    name     TEXT    PRIMARY KEY,
    position INTEGER NOT NULL
);
INSERT INTO audit_projection (name, position) VALUES ('audit', 0);

-- Shipments as registered: what a DSAR looks up by carrier + tracking number or recipient_ref.
CREATE TABLE audit_shipment (
    shipment_id         TEXT    PRIMARY KEY,
    shipper_id          TEXT    NOT NULL,
    carrier             TEXT    NOT NULL,
    tracking_number     TEXT    NOT NULL,
    destination_country TEXT    NOT NULL,
    recipient_ref       TEXT,
    position            INTEGER NOT NULL
);
CREATE INDEX audit_shipment_tracking ON audit_shipment (carrier, tracking_number);
CREATE INDEX audit_shipment_recipient ON audit_shipment (recipient_ref) WHERE recipient_ref IS NOT NULL;

-- One row per access decision (TrackingAccessAllowed / TrackingAccessDenied), keyed by its log
-- position, with an index per filter of GET /v1/audit/access, each ending in position so that
-- a page (position > cursor ORDER BY position) is one index range.
CREATE TABLE audit_access (
    position        INTEGER PRIMARY KEY,
    decided_at      INTEGER NOT NULL,
    allowed         INTEGER NOT NULL,
    reason          TEXT,
    partner_id      TEXT    NOT NULL,
    on_behalf_of    TEXT,
    shipment_id     TEXT,
    shipper_id      TEXT,
    carrier         TEXT,
    tracking_number TEXT,
    purpose         TEXT    NOT NULL,
    requested       TEXT    NOT NULL,
    granted         TEXT    NOT NULL,
    consent_ids     TEXT    NOT NULL,
    decision_id     TEXT    NOT NULL
);
CREATE INDEX audit_access_shipment ON audit_access (shipment_id, position);
-- By carrier + tracking number only the decisions about no registered shipment (asked by a
-- tracking number nobody had registered): a registered parcel's rows are found by its shipment
-- id, so that each decision takes no second random index insertion.
CREATE INDEX audit_access_tracking ON audit_access (carrier, tracking_number, position)
    WHERE shipment_id IS NULL;
CREATE INDEX audit_access_partner ON audit_access (partner_id, position);
CREATE INDEX audit_access_shipper ON audit_access (shipper_id, position);
CREATE INDEX audit_access_time ON audit_access (decided_at, position);

-- Decisions per UTC day, partner and outcome: a month's RoPA sums ~30 rows per partner instead
-- of scanning the month's decisions; only the partial days at its edges read audit_access.
CREATE TABLE audit_daily (
    day        INTEGER NOT NULL,
    partner_id TEXT    NOT NULL,
    allowed    INTEGER NOT NULL,
    decisions  INTEGER NOT NULL,
    PRIMARY KEY (day, partner_id, allowed)
);
