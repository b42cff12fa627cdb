-- Revocation is effective at commit (SPEC §5.2): the position of the newest append that
-- restricted access (a consent revoked, a partner suspended). An allowed decision commits only
-- if it was decided on state that already included this position. -1: no restriction yet.
-- Read and moved only under the log_head lock, so every process sees the newest value.
CREATE TABLE fences (
    name     TEXT   PRIMARY KEY,
    position BIGINT NOT NULL
);
INSERT INTO fences (name, position) VALUES ('restriction', -1);
