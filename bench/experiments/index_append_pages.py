#!/usr/bin/env python3
"""Pages a commit writes into the events table and its unique index when every commit appends
22 access decisions, whose keys ('access', a time-ordered id, 1) come after every earlier one;
and into the Merkle leaves' table, as the log keeps it and as a rowid table.

Usage: python3 index_append_pages.py [DIR]   (the scratch file DIR/index_append.db, default /tmp)
Builds the log's events table as migrations/sqlite/0001_events.sql declares it (the columns the
experiment needs, and its UNIQUE (stream_type, stream_id, stream_version)), 200,000 access
decisions with ids in time order, then 300 commits of 22 more, and counts the WAL frames of those
commits by B-tree (SQLite's `dbstat`): once with 20,000 keys of other stream types after the
access range in the index (as in a log: 'consent', 'principal' and 'shipment' sort after
'access'), once with none. An index B-tree in SQLite has no quick balance for appends: a full
leaf is rebalanced with its siblings and their parent. Then the same 300 commits of 22 leaf
hashes into `merkle_nodes` as migrations/sqlite/0003_merkle.sql declares it (WITHOUT ROWID, keyed
by (level, idx)) and into a table keyed by the leaf's index as its rowid, each after 200,000
leaves. Quoted in BENCHMARKS.md ("What each stage writes a decision").
"""
import os
import sqlite3
import sys
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from wal_frames import frames_by_tree  # noqa: E402  (the script beside this one)

DIR = sys.argv[1] if len(sys.argv) > 1 else "/tmp"


def time_ordered(ms, n):
    """A UUIDv7-shaped id: milliseconds first, so that later ids sort after earlier ones."""
    return "%08x-%04x-7%03x-8%03x-%012x" % (
        ms >> 16, ms & 0xFFFF, n >> 12 & 0xFFF, n & 0xFFF, n * 2654435761 % (1 << 48))


def fresh(name):
    path = os.path.join(DIR, name)
    for f in (path, path + "-wal", path + "-shm"):
        if os.path.exists(f):
            os.remove(f)
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA wal_autocheckpoint=0")
    return con, path


def frames_a_commit(con, path):
    """The WAL's frames since its last restart, a commit, by the B-tree of their page."""
    _, commits, by_tree = frames_by_tree(path + "-wal", con)
    con.close()
    return {name: round(n / commits, 2) for name, n in by_tree.most_common()}


def events(others):
    con, path = fresh("index_append.db")
    con.execute(
        "CREATE TABLE events (position INTEGER PRIMARY KEY, stream_type TEXT NOT NULL, "
        "stream_id TEXT NOT NULL, stream_version INTEGER NOT NULL, payload TEXT NOT NULL, "
        "UNIQUE (stream_type, stream_id, stream_version))")
    insert = "INSERT INTO events VALUES (?, ?, ?, ?, ?)"
    pos, ms = 0, 1 << 40
    con.execute("BEGIN")
    for i in range(others):
        con.execute(insert, (pos, ("consent", "shipment", "principal")[i % 3],
                             str(uuid.uuid4()), 1, "x" * 400))
        pos += 1
    for i in range(200_000):
        ms += i % 22 == 0
        con.execute(insert, (pos, "access", time_ordered(ms, pos), 1, "x" * 500))
        pos += 1
    con.execute("COMMIT")
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    for _ in range(300):
        ms += 1
        con.execute("BEGIN")
        for _ in range(22):
            con.execute(insert, (pos, "access", time_ordered(ms, pos), 1, "x" * 500))
            pos += 1
        con.execute("COMMIT")
    return frames_a_commit(con, path)


def leaves(ddl, insert):
    con, path = fresh("leaf_append.db")
    con.execute(ddl)
    leaf = os.urandom(32)
    con.execute("BEGIN")
    for idx in range(200_000):
        con.execute(insert, (idx, leaf))
    con.execute("COMMIT")
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    idx = 200_000
    for _ in range(300):
        con.execute("BEGIN")
        for _ in range(22):
            con.execute(insert, (idx, leaf))
            idx += 1
        con.execute("COMMIT")
    return frames_a_commit(con, path)


print("events, 20,000 keys of other streams after the access range:", events(20_000))
print("events, no key after the access range:", events(0))
print("leaves, WITHOUT ROWID (level, idx):", leaves(
    "CREATE TABLE merkle_nodes (level INTEGER NOT NULL, idx INTEGER NOT NULL, hash BLOB NOT NULL, "
    "PRIMARY KEY (level, idx)) WITHOUT ROWID",
    "INSERT INTO merkle_nodes VALUES (0, ?, ?)"))
print("leaves, the index as rowid:", leaves(
    "CREATE TABLE merkle_leaves (idx INTEGER PRIMARY KEY, hash BLOB NOT NULL)",
    "INSERT INTO merkle_leaves VALUES (?, ?)"))
