#!/usr/bin/env python3
"""What each part of the GDPR projection's file costs a decision, on a real projection file.

Usage: python3 gdpr_copy_cost.py AUDIT_DB VARIANT [ROWS]
  AUDIT_DB  a `ledger.audit.db` written by `serve` (e.g. the data directory `bench http`
            leaves); it is copied next to itself as AUDIT_DB.exp, and the copy changed
  VARIANT   as-built   the tables as migrations/sqlite-audit makes them: the row, its partner,
                       shipper and time index entries, and the copy clustered by
                       (shipment_id, position), filled by its trigger
            no-copy    the same without the clustered copy (its trigger dropped)
            index      a (shipment_id, position) index on the rows instead of the copy
            bare       the rows alone: no copy, no partner, shipper or time index
  ROWS      rows timed (default 100,000), in transactions of 5,000, as the follower writes them
Re-inserts the file's own rows from position 1,500,000 on at new positions (their parcels,
partners and times as the load made them), with the pragmas the projection's writer uses (WAL,
synchronous=OFF, 128 MiB cache, checkpoint every 64 MiB, temp_store=MEMORY), and prints the
process CPU and wall time per row. Quoted in BENCHMARKS.md ("What bounds single decisions").
"""
import os, resource, shutil, sqlite3, sys, time

source, variant = sys.argv[1], sys.argv[2]
rows = int(sys.argv[3]) if len(sys.argv) > 3 else 100_000
path = source + ".exp"
for suffix in ("", "-wal", "-shm"):
    if os.path.exists(path + suffix):
        os.remove(path + suffix)
shutil.copyfile(source, path)
db = sqlite3.connect(path, isolation_level=None)
for pragma in ("journal_mode=WAL", "synchronous=OFF", "cache_size=-131072",
               "wal_autocheckpoint=16384", "temp_store=MEMORY"):
    db.execute(f"PRAGMA {pragma}")
if variant != "as-built":
    db.execute("DROP TRIGGER audit_access_by_shipment_copy")
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
    sys.exit(f"the file holds {len(sample)} rows past position 1,500,000; {rows} asked")
step = 5_000
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
