-- How the ledger itself served an access (SPEC §14): `pull` or `webhook`; NULL for a decision
-- whose caller served the data.
ALTER TABLE audit_access ADD COLUMN channel TEXT;
