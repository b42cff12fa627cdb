-- The RFC 9162 Merkle tree over the global log (SPEC §6): leaf i is event position i. Every
-- complete (perfect) subtree's hash is kept: level 0 holds the leaf hashes, node (level, idx)
-- covers leaves [idx·2^level, (idx+1)·2^level). Any root, inclusion or consistency proof is
-- O(log n) of these rows; appended in the same transaction as the events they hash.
CREATE TABLE merkle_nodes (
    level INTEGER NOT NULL,
    idx   INTEGER NOT NULL,
    hash  BLOB    NOT NULL,
    PRIMARY KEY (level, idx)
) WITHOUT ROWID;
