-- An access decision's first event leaves the stream index (issue 18), as on SQLite
-- (migrations/sqlite/0018): its stream's id is the decision's, drawn fresh for it, so no other
-- writer can hold that version; every other event keeps the refusal of a second event of one
-- stream version. Statements that read by stream repeat the condition word for word
-- (`in_stream_index!` in store/src/lib.rs).
CREATE UNIQUE INDEX events_stream ON events (stream_type, stream_id, stream_version)
    WHERE stream_type <> 'access' OR stream_version > 1;

ALTER TABLE events DROP CONSTRAINT events_stream_type_stream_id_stream_version_key;
