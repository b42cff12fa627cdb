-- The Merkle tree's leaves (level 0, docs/adr/0004) move to a table keyed by the leaf's index
-- as its rowid (issue 18). `merkle_nodes` is a WITHOUT ROWID table, an index B-tree, and SQLite
-- balances an index B-tree's full leaf page with its siblings and their parent even when the
-- new key is the largest (only a table's rowid pages have the quick balance for appends): each
-- commit of ~22 single decisions wrote 3.5–3.9 pages of it for ~1 KB of leaves, against 1.4
-- pages for the same appends to a rowid table (BENCHMARKS.md, "What each stage writes a
-- decision"). `merkle_nodes` stays as a view of the leaves, for the readers both backends
-- share; every write goes to `merkle_leaves`. At 10M events this copies ~450 MB, once.
CREATE TABLE merkle_leaves (
    idx  INTEGER PRIMARY KEY,
    hash BLOB    NOT NULL
);

INSERT INTO merkle_leaves (idx, hash)
    SELECT idx, hash FROM merkle_nodes WHERE level = 0 ORDER BY idx;

DROP TABLE merkle_nodes;

CREATE VIEW merkle_nodes (level, idx, hash) AS
    SELECT 0, idx, hash FROM merkle_leaves;
