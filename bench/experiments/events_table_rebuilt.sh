#!/usr/bin/env bash
# The log's events table rebuilt on a copy of a data directory, with the stream index of one's
# choice: sizes what that index costs the group commit (BENCHMARKS.md, "The events' unique
# index, measured as an upper bound" and "Access decisions out of the stream index").
#
#   bench/experiments/events_table_rebuilt.sh SRC DEST unique|partial|none
#
# SRC is a `bench http` data directory (e.g. the one `bench all` leaves in <dir>/http), not in
# use; DEST is replaced by a copy of it whose events are copied, in log order, into a new table
# made from the source's own definition without any UNIQUE clause, so that every variant has the
# same fresh layout; then the stream index is made — `unique`: over every event, as migration
# 0001 made it; `partial`: every event but an access decision's first, as migration 0018 makes
# it; `none`: no index — and the partial index of cancellations again. `none` is for measuring
# only: without the index the log no longer refuses a second event of one stream version, and
# reads of a stream by id scan the table. Run the copy with the binary its migrations match.
# Needs sqlite3, perl.
set -eu
SRC=$1; DEST=$2; KIND=$3
case $KIND in
unique) STREAM="CREATE UNIQUE INDEX events_stream ON events (stream_type, stream_id, stream_version);" ;;
partial) STREAM="CREATE UNIQUE INDEX events_stream ON events (stream_type, stream_id, stream_version)
    WHERE stream_type <> 'access' OR stream_version > 1;" ;;
none) STREAM="" ;;
*) echo "unique, partial or none" >&2; exit 2 ;;
esac
rm -rf "$DEST"; cp -a "$SRC" "$DEST"
CANCELLED=$(sqlite3 "$DEST/ledger.db" "SELECT sql FROM sqlite_master WHERE name = 'events_cancelled_at'")
# The table as the migrations made it, renamed, without a UNIQUE clause.
TABLE=$(sqlite3 "$DEST/ledger.db" "SELECT sql FROM sqlite_master WHERE name = 'events'" |
  sed -E 's/^CREATE TABLE "?events"? /CREATE TABLE events_rebuilt /' |
  perl -0pe 's/,\s*(--[^\n]*\n\s*)*UNIQUE \(stream_type, stream_id, stream_version\)//')
sqlite3 -bail "$DEST/ledger.db" <<SQL
BEGIN;
$TABLE;
INSERT INTO events_rebuilt SELECT * FROM events ORDER BY position;
DROP TABLE events;
ALTER TABLE events_rebuilt RENAME TO events;
$STREAM
$CANCELLED;
COMMIT;
PRAGMA wal_checkpoint(TRUNCATE);
SQL
sqlite3 "$DEST/ledger.db" "SELECT COUNT(*) || ' events; indexes: ' || (SELECT group_concat(name, ', ') FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events') FROM events"
