-- A write transaction of the common kind in one round trip (docs/adr/0005): the writer that
-- committed the log's last batch knows the head it left (the next position and the restriction
-- fence) and the tree's right edge, so it stamps positions, hashes leaves and computes the new
-- subtree hashes before it sends anything, and this function, called as one statement outside
-- any transaction, takes the head's lock, checks that the head is still the one expected, and
-- writes the batch's idempotency keys, unique claims, events and subtree hashes, moves the fence,
-- and notifies the other nodes; the statement's own commit is the batch's commit and WAL flush.
--
-- If another process appended in between, nothing is written and the function returns false:
-- the writer then takes the general path (BEGIN, the lock, the head read under it). A unique
-- violation (a taken stream version, claim or key) aborts the statement whole, as it aborts the
-- general path's statement, and the writer redoes the batch one append at a time.
--
-- Each statement of a VOLATILE function takes its own snapshot under READ COMMITTED, so the
-- reads after the lock see everything the lock's previous holder committed.
CREATE FUNCTION log_append(
    expected_next   BIGINT,
    expected_fence  BIGINT,
    key_scope       TEXT[],
    key_key         TEXT[],
    key_fingerprint TEXT[],
    key_first       BIGINT[],
    key_last        BIGINT[],
    key_created_at  TIMESTAMPTZ,
    claim           TEXT[],
    claim_position  BIGINT[],
    e_position      BIGINT[],
    e_stream_type   TEXT[],
    e_stream_id     TEXT[],
    e_version       BIGINT[],
    e_event_type    TEXT[],
    e_schema        INTEGER[],
    e_actor         TEXT[],
    e_request_id    TEXT[],
    e_recorded_at   TIMESTAMPTZ[],
    e_payload       TEXT[],
    node_level      INTEGER[],
    node_idx        BIGINT[],
    node_hash       BYTEA[],
    new_fence       BIGINT,
    new_size        BIGINT
) RETURNS BOOLEAN
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM 1 FROM log_head WHERE id = 1 FOR UPDATE;
    IF (SELECT COALESCE(MAX(position) + 1, 0) FROM events) <> expected_next
       OR (SELECT position FROM fences WHERE name = 'restriction') <> expected_fence THEN
        RETURN FALSE;
    END IF;
    INSERT INTO idempotency_keys (scope, key, fingerprint, first_position, last_position, created_at)
    SELECT k.scope, k.key, k.fingerprint, k.first_position, k.last_position, key_created_at
    FROM UNNEST(key_scope, key_key, key_fingerprint, key_first, key_last)
        AS k(scope, key, fingerprint, first_position, last_position);
    INSERT INTO unique_claims (claim, position)
    SELECT * FROM UNNEST(claim, claim_position);
    INSERT INTO events (position, stream_type, stream_id, stream_version, event_type,
                        schema_version, actor, request_id, recorded_at, payload)
    SELECT * FROM UNNEST(e_position, e_stream_type, e_stream_id, e_version, e_event_type,
                         e_schema, e_actor, e_request_id, e_recorded_at, e_payload);
    INSERT INTO merkle_nodes (level, idx, hash)
    SELECT * FROM UNNEST(node_level, node_idx, node_hash);
    IF new_fence IS NOT NULL THEN
        UPDATE fences SET position = new_fence WHERE name = 'restriction';
    END IF;
    IF new_size IS NOT NULL THEN
        PERFORM pg_notify('consent_ledger_log', new_size::TEXT);
    END IF;
    RETURN TRUE;
END
$$;
