-- Credentials live beside the log, never in it (SPEC §2): each principal's current bearer-token
-- digest (hex SHA-256), written in the same transaction as the event that issued it
-- (PrincipalRegistered or PrincipalTokenRotated, at `position`). A rotation replaces the row, so
-- the old token is refused from that commit on.
CREATE TABLE credentials (
    principal_id TEXT    PRIMARY KEY,
    token_sha256 TEXT    NOT NULL UNIQUE,
    position     BIGINT  NOT NULL
);
