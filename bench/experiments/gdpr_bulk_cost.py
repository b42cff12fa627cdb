#!/usr/bin/env python3
"""What a rebuild of the GDPR projection would save by building its clustered copy and indexes
once at the end instead of row by row (BENCHMARKS.md, "A rebuild of the GDPR projection
(`replay --audit`) at 10M events": building the copy and the indexes at the end, measured and not
kept).

Usage: DIR=/var/tmp N=1000000 SHIPS=100000 python3 gdpr_bulk_cost.py VARIANT
  (the file is DIR/bulk-VARIANT.db, removed first)
  VARIANT  current    the tables as migrations/sqlite-audit makes them: every row also copied
                      by the trigger into the copy clustered by (shipment_id, position), and
                      the four indexes of audit_access kept up row by row
           notrigger  the indexes kept up, the copy filled at the end in its key order
           noindex    neither: the copy filled and the indexes created at the end
Writes N rows over SHIPS parcels in transactions of 5,000 with the projection writer's pragmas
and prints the CPU and wall time a row of the load and of the end.
"""
import sqlite3, uuid, random, time, sys, os
variant = sys.argv[1]
N = int(os.environ.get("N", "1000000")); SHIPS = int(os.environ.get("SHIPS", "100000"))
path = os.path.join(os.environ.get("DIR", "."), f"bulk-{variant}.db")
for suf in ("", "-wal", "-shm"):
    try: os.remove(path + suf)
    except FileNotFoundError: pass
db = sqlite3.connect(path, isolation_level=None)
db.execute("PRAGMA journal_mode=WAL"); db.execute("PRAGMA synchronous=OFF")
db.execute("PRAGMA cache_size=-131072"); db.execute("PRAGMA wal_autocheckpoint=16384"); db.execute("PRAGMA temp_store=MEMORY")
cols = """position INTEGER PRIMARY KEY, decided_at INTEGER NOT NULL, allowed INTEGER NOT NULL, reason TEXT,
 partner_id TEXT NOT NULL, on_behalf_of TEXT, shipment_id TEXT, shipper_id TEXT, carrier TEXT, tracking_number TEXT,
 purpose TEXT NOT NULL, requested TEXT NOT NULL, granted TEXT NOT NULL, consent_ids TEXT NOT NULL, decision_id TEXT NOT NULL,
 channel TEXT, authorization_ids TEXT, dpa_id TEXT"""
names = "position, decided_at, allowed, reason, partner_id, on_behalf_of, shipment_id, shipper_id, carrier, tracking_number, purpose, requested, granted, consent_ids, decision_id, channel, authorization_ids, dpa_id"
db.execute(f"CREATE TABLE audit_access ({cols})")
db.execute(f"CREATE TABLE audit_access_by_shipment ({cols.replace('PRIMARY KEY','NOT NULL')}, PRIMARY KEY (shipment_id, position)) WITHOUT ROWID")
trig = f"CREATE TRIGGER c AFTER INSERT ON audit_access WHEN NEW.shipment_id IS NOT NULL BEGIN INSERT INTO audit_access_by_shipment ({names}) VALUES ({', '.join('NEW.'+n.strip() for n in names.split(','))}); END"
idx = ["CREATE INDEX ap ON audit_access (partner_id, position)",
       "CREATE INDEX ash ON audit_access (shipper_id, position)",
       "CREATE INDEX at ON audit_access (decided_at, position)",
       "CREATE INDEX atr ON audit_access (carrier, tracking_number, position) WHERE shipment_id IS NULL"]
if variant == "current": db.execute(trig)
if variant in ("current", "notrigger"):
    for i in idx: db.execute(i)
random.seed(7)
ships = [str(uuid.uuid4()) for _ in range(SHIPS)]; partners = [str(uuid.uuid4()) for _ in range(100)]; shippers = [str(uuid.uuid4()) for _ in range(1000)]
consent = [str(uuid.uuid4()) for _ in range(100)]
def row(p):
    si = random.randrange(SHIPS); pi = random.randrange(100)
    return (p, 1733400000000000 + p*40, 1, None, partners[pi], None, ships[si], shippers[si % 1000], "dhl", "JJD000" + str(si),
            "order_status", "status,eta", "status,eta", consent[pi], str(uuid.uuid4()), None, "", None)
ins = f"INSERT INTO audit_access ({names}) VALUES ({','.join('?'*18)})"
t0 = time.process_time(); w0 = time.time(); gen = 0.0
p = 0
while p < N:
    g0 = time.process_time(); rows = [row(p + i) for i in range(5000)]; gen += time.process_time() - g0; p += 5000
    db.execute("BEGIN"); db.executemany(ins, rows); db.execute("COMMIT")
t1 = time.process_time(); w1 = time.time()
if variant != "current":
    db.execute("BEGIN")
    db.execute(f"INSERT INTO audit_access_by_shipment ({names}) SELECT {names} FROM audit_access WHERE shipment_id IS NOT NULL ORDER BY shipment_id, position")
    if variant == "noindex":
        for i in idx: db.execute(i)
    db.execute(trig)
    db.execute("COMMIT")
t2 = time.process_time(); w2 = time.time()
print(f"{variant}: load {(t1-t0-gen)/N*1e6:.1f} us cpu/row, wall {(w1-w0)/N*1e6:.1f}; finish {(t2-t1)/N*1e6:.1f} cpu, wall {(w2-w1)/N*1e6:.1f}; total wall {(w2-w0-gen)/N*1e6:.1f} us/row  ({(w2-w0-gen):.1f} s)")
