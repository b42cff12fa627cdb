-- The RFC 9162 Merkle tree over the global log (SPEC §6): leaf i is event position i. Node
-- (level, idx) is the hash of the perfect subtree over leaves [idx·2^level, (idx+1)·2^level).
-- Level 0 (the leaf hashes) and levels 4 and up are kept; levels 1–3 are recomputed from at
-- most eight leaves. Any root, inclusion or consistency proof is O(log n) of these rows;
-- appended in the same transaction as the events they hash.
CREATE TABLE merkle_nodes (
    level INTEGER NOT NULL,
    idx   BIGINT  NOT NULL,
    hash  BYTEA   NOT NULL CHECK (length(hash) = 32),
    PRIMARY KEY (level, idx)
);
