-- The GDPR audit projection moves to a file of its own (migrations/sqlite-audit, docs/adr/0006),
-- so that its writes never take the log's write lock. Its tables here are derived data: the
-- new file starts at position 0 and catch-up rebuilds them from the log.
DROP TABLE IF EXISTS audit_daily;
DROP TABLE IF EXISTS audit_access;
DROP TABLE IF EXISTS audit_shipment;
DROP TABLE IF EXISTS audit_projection;
