#!/usr/bin/env bash
# The log's events table rebuilt, with or without its UNIQUE (stream_type, stream_id,
# stream_version) constraint, on a copy of a data directory: sizes what the unique index costs
# the group commit (BENCHMARKS.md, "The events' unique index, measured as an upper bound").
#
#   bench/experiments/events_table_rebuilt.sh SRC DEST unique|none
#
# SRC is a `bench http` data directory (e.g. the one `bench all` leaves in <dir>/http), not in
# use; DEST is replaced by a copy of it whose events are copied, in log order, into a new table
# made from the source's own definition — as it is (`unique`: the constraint kept, the same fresh
# layout as `none`, so that the two differ only by the index) or without its UNIQUE clause
# (`none`) — then the partial index of cancellations is made again. `none` is for measuring
# only: without the constraint the log no longer refuses a second event of one stream version,
# and reads of a stream by id scan the table. Needs sqlite3, perl.
set -eu
SRC=$1; DEST=$2; KIND=$3
rm -rf "$DEST"; cp -a "$SRC" "$DEST"
CANCELLED=$(sqlite3 "$DEST/ledger.db" "SELECT sql FROM sqlite_master WHERE name = 'events_cancelled_at'")
# The table as the migrations made it, renamed; without its UNIQUE clause for `none`.
TABLE=$(sqlite3 "$DEST/ledger.db" "SELECT sql FROM sqlite_master WHERE name = 'events'" |
  sed -E 's/^CREATE TABLE "?events"? /CREATE TABLE events_rebuilt /')
case $KIND in
unique) ;;
none) TABLE=$(printf '%s' "$TABLE" |
  perl -0pe 's/,\s*(--[^\n]*\n\s*)*UNIQUE \(stream_type, stream_id, stream_version\)//') ;;
*) echo "unique or none" >&2; exit 2 ;;
esac
sqlite3 -bail "$DEST/ledger.db" <<SQL
BEGIN;
$TABLE;
INSERT INTO events_rebuilt SELECT * FROM events ORDER BY position;
DROP TABLE events;
ALTER TABLE events_rebuilt RENAME TO events;
$CANCELLED;
COMMIT;
PRAGMA wal_checkpoint(TRUNCATE);
SQL
sqlite3 "$DEST/ledger.db" "SELECT COUNT(*) || ' events; indexes: ' || (SELECT group_concat(name, ', ') FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events') FROM events"
