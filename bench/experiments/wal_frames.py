#!/usr/bin/env python3
"""Which B-trees a commit of the log writes, counted from a copy of its WAL.

Usage: python3 wal_frames.py COPY_OF_LEDGER_DB_WAL LEDGER_DB
  Copy `ledger.db-wal` while `serve` is under load (`cp DIR/ledger.db-wal /tmp/x.wal`: the WAL
  restarts after each checkpoint, so a copy holds the commits since the last one), then name
  the live `ledger.db` (opened read-only) to map each page to its B-tree through SQLite's
  `dbstat`. Reads the frames whose salts match the WAL's header, groups them into commits (a
  frame with a database size ends one) and prints the frames a commit, in total and by B-tree;
  page 1 is `sqlite_schema` (its header holds the file's size in pages). Quoted in
  BENCHMARKS.md ("What each stage writes a decision").
"""
import collections
import sqlite3
import struct
import sys

wal, db = sys.argv[1], sys.argv[2]
data = open(wal, "rb").read()
_, _, page_size, _, salt1, salt2, _, _ = struct.unpack(">IIIIIIII", data[:32])
frame = 24 + page_size
commits, current, off = [], [], 32
while off + frame <= len(data):
    page, size_after, s1, s2 = struct.unpack(">IIII", data[off:off + 16])
    if (s1, s2) != (salt1, salt2):
        break
    current.append(page)
    if size_after:
        commits.append(current)
        current = []
    off += frame
if not commits:
    sys.exit("no whole commit in this copy of the WAL")
con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
owner = {pageno: name for name, pageno in con.execute("SELECT name, pageno FROM dbstat")}
by_tree = collections.Counter(owner.get(p, "(not in the file yet)") for c in commits for p in c)
print(f"page size {page_size}; {len(commits)} commits, "
      f"{sum(map(len, commits)) / len(commits):.1f} frames a commit")
for name, n in by_tree.most_common():
    print(f"  {name:32} {n / len(commits):.2f} a commit")
