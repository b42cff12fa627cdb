#!/usr/bin/env python3
"""Which B-trees a commit of the log writes, counted from a copy of its WAL.

Usage: python3 wal_frames.py COPY_OF_LEDGER_DB_WAL LEDGER_DB
  Copy `ledger.db-wal` while `serve` is under load (`cp DIR/ledger.db-wal /tmp/x.wal`: the WAL
  restarts after each checkpoint, so a copy holds the commits since the last one), then name
  the live `ledger.db` (opened read-only) to map each page to its B-tree through SQLite's
  `dbstat`. Reads the frames whose salts match the WAL's header, groups them into commits (a
  frame with a database size ends one) and prints the frames a commit, in total and by B-tree;
  page 1 is `sqlite_schema` (its header holds the file's size in pages). Quoted in
  BENCHMARKS.md ("What each stage writes a decision"); `index_append_pages.py` counts with it.
"""
import collections
import sqlite3
import struct
import sys


def frames_by_tree(wal, con):
    """(page size, whole commits, frames by B-tree) of the WAL file `wal`, its pages named
    through the open connection `con` to its database."""
    data = open(wal, "rb").read()
    if len(data) < 32:
        return 0, 0, collections.Counter()
    _, _, page_size, _, salt1, salt2, _, _ = struct.unpack(">IIIIIIII", data[:32])
    owner = {pageno: name for name, pageno in con.execute("SELECT name, pageno FROM dbstat")}
    frame, off, pending, commits = 24 + page_size, 32, [], 0
    by_tree = collections.Counter()
    while off + frame <= len(data):
        page, size_after, s1, s2 = struct.unpack(">IIII", data[off:off + 16])
        if (s1, s2) != (salt1, salt2):
            break
        pending.append(page)
        if size_after:
            commits += 1
            by_tree.update(owner.get(p, "(not in the file yet)") for p in pending)
            pending = []
        off += frame
    return page_size, commits, by_tree


if __name__ == "__main__":
    wal, db = sys.argv[1], sys.argv[2]
    page_size, commits, by_tree = frames_by_tree(
        wal, sqlite3.connect(f"file:{db}?mode=ro", uri=True))
    if not commits:
        sys.exit("no whole commit in this copy of the WAL")
    print(f"page size {page_size}; {commits} commits, "
          f"{sum(by_tree.values()) / commits:.1f} frames a commit")
    for name, n in by_tree.most_common():
        print(f"  {name:32} {n / commits:.2f} a commit")
