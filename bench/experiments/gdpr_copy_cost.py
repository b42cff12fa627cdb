#!/usr/bin/env python3
"""What each part of the GDPR projection's file costs a decision, on a real projection file.

Usage: python3 gdpr_copy_cost.py AUDIT_DB VARIANT [ROWS] [--step N] [--checkpoint PAGES]
                                  [--journal MODE] [--vacuum] [--page-size BYTES]
  AUDIT_DB  a `ledger.audit.db` written by `serve` (e.g. the data directory `bench http`
            leaves); it is copied next to itself as AUDIT_DB.exp, and the copy changed
  VARIANT   as-built   the tables as migrations/sqlite-audit makes them: the row, its partner,
                       shipper and time index entries, and the copy clustered by
                       (shipment_id, position), filled by its trigger
            no-copy    the same without the clustered copy (its trigger dropped)
            index      a (shipment_id, position) index on the rows instead of the copy
            bare       the rows alone: no copy, no partner, shipper or time index
            narrow     the clustered copy holding only (shipment_id, position, decided_at),
                       refilled from the rows in key order
  ROWS      rows timed (default 100,000), in transactions of --step (default 5,000), as the
            follower writes them
  --checkpoint   wal_autocheckpoint in pages (default 16384, the writer's 64 MiB)
  --journal      journal_mode (default WAL, the writer's)
  --vacuum       rebuild the copy with VACUUM first (every page packed), with --page-size if
                 given (SQLite's default is 4096)
Re-inserts the file's own rows from position 1,500,000 on at new positions (their parcels,
partners and times as the load made them), with the pragmas the projection's writer uses (WAL,
synchronous=OFF, 128 MiB cache, checkpoint every 64 MiB, temp_store=MEMORY) unless told
otherwise, and prints the process CPU and wall time per row. Quoted in BENCHMARKS.md ("What
bounds single decisions", "The load generator's share").
"""
import argparse, os, resource, shutil, sqlite3, time

parser = argparse.ArgumentParser()
parser.add_argument("source")
parser.add_argument("variant", choices=["as-built", "no-copy", "index", "bare", "narrow"])
parser.add_argument("rows", nargs="?", type=int, default=100_000)
parser.add_argument("--step", type=int, default=5_000)
parser.add_argument("--checkpoint", type=int, default=16_384)
parser.add_argument("--journal", default="WAL")
parser.add_argument("--vacuum", action="store_true")
parser.add_argument("--page-size", type=int)
args = parser.parse_args()
source, variant, rows = args.source, args.variant, args.rows
path = source + ".exp"
for suffix in ("", "-wal", "-shm"):
    if os.path.exists(path + suffix):
        os.remove(path + suffix)
shutil.copyfile(source, path)
db = sqlite3.connect(path, isolation_level=None)
if args.vacuum:
    db.execute("PRAGMA journal_mode=DELETE")
    if args.page_size:
        db.execute(f"PRAGMA page_size={args.page_size}")
    db.execute("VACUUM")
for pragma in (f"journal_mode={args.journal}", "synchronous=OFF", "cache_size=-131072",
               f"wal_autocheckpoint={args.checkpoint}", "temp_store=MEMORY"):
    db.execute(f"PRAGMA {pragma}")
if variant != "as-built":
    db.execute("DROP TRIGGER audit_access_by_shipment_copy")
if variant == "narrow":
    db.execute("DROP TABLE audit_access_by_shipment")
    db.execute("CREATE TABLE audit_access_by_shipment (shipment_id TEXT NOT NULL, "
               "position INTEGER NOT NULL, decided_at INTEGER NOT NULL, "
               "PRIMARY KEY (shipment_id, position)) WITHOUT ROWID")
    db.execute("INSERT INTO audit_access_by_shipment (shipment_id, position, decided_at) "
               "SELECT shipment_id, position, decided_at FROM audit_access "
               "WHERE shipment_id IS NOT NULL ORDER BY shipment_id, position")
    db.execute("CREATE TRIGGER audit_access_by_shipment_copy AFTER INSERT ON audit_access "
               "WHEN NEW.shipment_id IS NOT NULL BEGIN "
               "INSERT INTO audit_access_by_shipment (shipment_id, position, decided_at) "
               "VALUES (NEW.shipment_id, NEW.position, NEW.decided_at); END")
if variant == "index":
    db.execute("CREATE INDEX audit_access_shipment ON audit_access (shipment_id, position) "
               "WHERE shipment_id IS NOT NULL")
if variant == "bare":
    for index in ("audit_access_partner", "audit_access_shipper", "audit_access_time"):
        db.execute(f"DROP INDEX {index}")
columns = ("position, decided_at, allowed, reason, partner_id, on_behalf_of, shipment_id, "
           "shipper_id, carrier, tracking_number, purpose, requested, granted, consent_ids, "
           "decision_id, channel, authorization_ids, dpa_id")
(end,) = db.execute("SELECT MAX(position) FROM audit_access").fetchone()
sample = db.execute(f"SELECT {columns} FROM audit_access WHERE position >= 1500000 "
                    f"ORDER BY position LIMIT {rows}").fetchall()
if len(sample) < rows:
    raise SystemExit(f"the file holds {len(sample)} rows past position 1,500,000; {rows} asked")
step = args.step
batches = [[(end + 1 + i + j,) + tuple(r[1:]) for j, r in enumerate(sample[i:i + step])]
           for i in range(0, rows, step)]
insert = f"INSERT INTO audit_access ({columns}) VALUES ({', '.join('?' * 18)})"
before, t0 = resource.getrusage(resource.RUSAGE_SELF), time.time()
for batch in batches:
    db.execute("BEGIN")
    db.executemany(insert, batch)
    db.execute("COMMIT")
wall, after = time.time() - t0, resource.getrusage(resource.RUSAGE_SELF)
cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
print(f"{variant}: {rows} rows, CPU {cpu * 1e6 / rows:.1f} µs a row, wall {wall * 1e6 / rows:.1f} µs")
db.close()
for suffix in ("", "-wal", "-shm"):
    if os.path.exists(path + suffix):
        os.remove(path + suffix)
