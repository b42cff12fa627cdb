-- The carrier authorizations a decision rested on or names, and the DPA an allowed read relied
-- on (SPEC §16). Rows projected before authorizations existed rested on none: NULL reads as
-- none.
ALTER TABLE audit_access ADD COLUMN authorization_ids TEXT;
ALTER TABLE audit_access ADD COLUMN dpa_id TEXT;
