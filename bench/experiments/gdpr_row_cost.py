#!/usr/bin/env python3
"""What one decision costs to write into the GDPR projection's file, by the shape of its rows.

Usage: DIR=/var/tmp python3 gdpr_row_cost.py VARIANT [PAGE_SIZE]
  (N0: rows written first, default 1,400,000; N1: rows timed, default 100,000; the file is
  DIR/VARIANT-PAGE_SIZE.db, removed first)
  VARIANT  text         the tables as migrations/sqlite-audit makes them: text UUIDs, the
                        clustered copy by (shipment_id, position) filled by its trigger
           blob         the same with the five ids as 16-byte blobs
           text-nocopy  text UUIDs, a (shipment_id, position) index instead of the copy
           blob-nocopy  both
Builds a file of N0 rows (100,000 parcels, 100 partners, one shipper) with the pragmas the
projection's writer uses (WAL, synchronous=OFF, 128 MiB cache, checkpoint every 64 MiB,
temp_store=MEMORY), then times N1 more rows in transactions of 5,000 and prints the process
CPU and wall time per row (the time Python takes to build the rows measured apart and taken
off the CPU figure) and the file's bytes per row. Quoted in BENCHMARKS.md ("16-byte ids").
"""
import sqlite3, uuid, random, time, sys, os
variant = sys.argv[1]; page = int(sys.argv[2]) if len(sys.argv) > 2 else 4096
N0 = int(os.environ.get("N0", "1400000")); N1 = int(os.environ.get("N1", "100000"))
path = os.path.join(os.environ.get("DIR", "."), f"{variant}-{page}.db")
for suf in ("", "-wal", "-shm"):
    try: os.remove(path + suf)
    except FileNotFoundError: pass
db = sqlite3.connect(path, isolation_level=None)
db.execute(f"PRAGMA page_size={page}")
db.execute("PRAGMA journal_mode=WAL"); db.execute("PRAGMA synchronous=OFF")
db.execute("PRAGMA cache_size=-131072"); db.execute("PRAGMA wal_autocheckpoint=16384"); db.execute("PRAGMA temp_store=MEMORY")
blob = variant.startswith("blob")
T = "BLOB" if blob else "TEXT"
cols = f"""position INTEGER PRIMARY KEY, decided_at INTEGER NOT NULL, allowed INTEGER NOT NULL, reason TEXT,
 partner_id {T} NOT NULL, on_behalf_of {T}, shipment_id {T}, shipper_id {T}, carrier TEXT, tracking_number TEXT,
 purpose TEXT NOT NULL, requested TEXT NOT NULL, granted TEXT NOT NULL, consent_ids TEXT NOT NULL, decision_id {T} NOT NULL,
 channel TEXT, authorization_ids TEXT, dpa_id TEXT"""
db.execute(f"CREATE TABLE audit_access ({cols})")
names = "position, decided_at, allowed, reason, partner_id, on_behalf_of, shipment_id, shipper_id, carrier, tracking_number, purpose, requested, granted, consent_ids, decision_id, channel, authorization_ids, dpa_id"
if "nocopy" not in variant:
    db.execute(f"CREATE TABLE audit_access_by_shipment ({cols.replace('PRIMARY KEY','NOT NULL')}, PRIMARY KEY (shipment_id, position)) WITHOUT ROWID")
    db.execute(f"CREATE TRIGGER c AFTER INSERT ON audit_access WHEN NEW.shipment_id IS NOT NULL BEGIN INSERT INTO audit_access_by_shipment ({names}) VALUES ({', '.join('NEW.'+n.strip() for n in names.split(','))}); END")
else:
    db.execute("CREATE INDEX s ON audit_access (shipment_id, position)")
db.execute("CREATE INDEX ap ON audit_access (partner_id, position)")
db.execute("CREATE INDEX ash ON audit_access (shipper_id, position)")
db.execute("CREATE INDEX at ON audit_access (decided_at, position)")
def idv(u): return u.bytes if blob else str(u)
random.seed(7)
ships = [uuid.uuid4() for _ in range(100000)]; partners = [uuid.uuid4() for _ in range(100)]; shipper = uuid.uuid4()
consent = [str(uuid.uuid4()) for _ in range(100)]
def row(p):
    s = random.choice(ships); pi = random.randrange(100)
    return (p, 1733400000000000 + p*40, 1, None, idv(partners[pi]), None, idv(s), idv(shipper), "dhl", None,
            "order_status", "status,eta", "status,eta", consent[pi], idv(uuid.uuid4()), "pull", None, None)
ins = f"INSERT INTO audit_access ({names}) VALUES ({','.join('?'*18)})"
p = 0
def batch(n, step=5000):
    global p
    for _ in range(n // step):
        rows = [row(p + i) for i in range(step)]; p += step
        db.execute("BEGIN"); db.executemany(ins, rows); db.execute("COMMIT")
batch(N0, 20000)
db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
t0 = time.process_time(); w0 = time.time()
batch(N1)
t1 = time.process_time(); w1 = time.time()
# python row-building overhead estimate
t2 = time.process_time(); [row(i) for i in range(N1)]; t3 = time.process_time()
sz = os.path.getsize(path)
print(f"{variant} page={page}: {(t1-t0-(t3-t2))/N1*1e6:.1f} us cpu/event (rowgen {(t3-t2)/N1*1e6:.1f} removed), wall {(w1-w0)/N1*1e6:.1f} us, file {sz/1e6:.0f} MB = {sz/(N0+N1):.0f} B/event")
