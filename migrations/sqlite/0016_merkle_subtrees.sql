-- The kept subtree hashes (levels 4 and up, docs/adr/0004) move to a table of their own, keyed
-- by tile (issue 18). Keyed by (level, idx), the dozen nodes of one inclusion proof lay on a
-- dozen pages of the file, each a read from the disk when the file is cold: more than half of
-- the pages one shipment's export read at 10M events. Here a band is four levels (4–7, 8–11,
-- …), a tile the band's 30 nodes under one node of the level above the band (the index of that
-- node: idx >> (4·band + 8 − level)), and the key keeps a tile's rows side by side: the four
-- nodes of a band a proof needs are one page. The leaves (level 0) stay in `merkle_nodes`,
-- where the leaf ranges a proof and `audit-log` read lie together already; it holds no other
-- level from here on.
CREATE TABLE merkle_subtrees (
    band  INTEGER NOT NULL,
    tile  INTEGER NOT NULL,
    level INTEGER NOT NULL,
    idx   INTEGER NOT NULL,
    hash  BLOB    NOT NULL,
    PRIMARY KEY (band, tile, level, idx)
) WITHOUT ROWID;

INSERT INTO merkle_subtrees (band, tile, level, idx, hash)
    SELECT (level - 4) / 4, idx >> ((level - 4) / 4 * 4 + 8 - level), level, idx, hash
    FROM merkle_nodes
    WHERE level >= 4
    ORDER BY 1, 2, 3, 4;

DELETE FROM merkle_nodes WHERE level > 0;
