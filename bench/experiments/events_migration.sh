#!/usr/bin/env bash
# What migration 0018 (access decisions out of the stream index) costs a log on SQLite: time and
# the disk it takes at its peak, with the freed pages of the old table zeroed (`secure_delete`,
# as the log's connections have it) and not (as 0018 does) — BENCHMARKS.md, "Access decisions
# out of the stream index".
#
#   bench/experiments/events_migration.sh DIR
#
# DIR is a copy of a data directory a `bench http` run left, not in use; it is changed. For
# each mode its events table is first put back into the form migration 0001 made (UNIQUE on
# every stream version) and the file vacuumed; then 0018's statements run through the sqlite3
# shell with synchronous=FULL in one transaction, as sqlx runs a migration, while the
# directory's size is sampled every 0.5 s. Needs sqlite3, bc.
set -eu
D=$1
MIGRATIONS=$(dirname "$0")/../../migrations/sqlite
MIGRATION=$MIGRATIONS/0018_events_stream_index.sql
# The events table as 0001 made it, and the cancellations' index of 0015, from the migrations.
TABLE_0001=$(sed -n '/^CREATE TABLE events (/,/^);/p' "$MIGRATIONS/0001_events.sql" |
  sed 's/^CREATE TABLE events (/CREATE TABLE events_0001 (/')
CANCELLED=$(sed -n '/^CREATE INDEX events_cancelled_at/,/;$/p' "$MIGRATIONS/0015_events_cancelled_at.sql")
for zeroing in ON OFF; do
  sqlite3 -bail "$D/ledger.db" <<SQL
DROP INDEX IF EXISTS events_stream;
$TABLE_0001
INSERT INTO events_0001 SELECT * FROM events ORDER BY position;
DROP TABLE events;
ALTER TABLE events_0001 RENAME TO events;
$CANCELLED
VACUUM;
SQL
  sync
  BEFORE=$(du -sb "$D" | cut -f1)
  SCRIPT=$(mktemp)
  {
    echo "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA secure_delete = ON; BEGIN;"
    sed "s/PRAGMA secure_delete = OFF;/PRAGMA secure_delete = $zeroing;/" "$MIGRATION"
    echo "COMMIT;"
  } >"$SCRIPT"
  START=$(date +%s.%N)
  sqlite3 -bail "$D/ledger.db" <"$SCRIPT" >/dev/null &
  PID=$!; PEAK=$BEFORE
  while kill -0 $PID 2>/dev/null; do
    SIZE=$(du -sb "$D" 2>/dev/null | cut -f1)
    [ "$SIZE" -gt "$PEAK" ] && PEAK=$SIZE
    sleep 0.5
  done
  wait $PID
  END=$(date +%s.%N)
  rm -f "$SCRIPT"
  echo "zeroing $zeroing: $(echo "$END - $START" | bc) s, $((PEAK - BEFORE)) bytes more at the peak, $(( $(du -sb "$D" | cut -f1) - BEFORE )) after, $(sqlite3 "$D/ledger.db" 'SELECT COUNT(*) FROM events') events"
done
