-- `log_append` (0018) writes what a batch keeps beside its events as well: sealed fields'
-- openings (SPEC §12), tracking updates (SPEC §14) and webhook messages (SPEC §13), so that a
-- decision that seals a tracking number, an ingested tracking update and its fan-out commit in
-- one round trip, as they do on SQLite (docs/adr/0005). A tracking update already held is a
-- unique violation that aborts the statement whole: the writer then redoes the batch one append
-- at a time and refuses that append alone, as for a taken stream version.
--
-- The new arrays default to empty, so that a node of the version before, calling with the 25
-- arguments of 0018 during a rolling upgrade, reaches this function and writes as before.
DROP FUNCTION log_append(BIGINT, BIGINT, TEXT[], TEXT[], TEXT[], BIGINT[], BIGINT[], TIMESTAMPTZ,
                         TEXT[], BIGINT[], BIGINT[], TEXT[], TEXT[], BIGINT[], TEXT[], INTEGER[],
                         TEXT[], TEXT[], TIMESTAMPTZ[], TEXT[], INTEGER[], BIGINT[], BYTEA[],
                         BIGINT, BIGINT);

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
    new_size        BIGINT,
    o_position      BIGINT[] DEFAULT '{}',
    o_pointer       TEXT[] DEFAULT '{}',
    o_value         TEXT[] DEFAULT '{}',
    o_salt          TEXT[] DEFAULT '{}',
    o_stream_type   TEXT[] DEFAULT '{}',
    o_stream_id     TEXT[] DEFAULT '{}',
    t_update_id     TEXT[] DEFAULT '{}',
    t_shipment_id   TEXT[] DEFAULT '{}',
    t_status        TEXT[] DEFAULT '{}',
    t_occurred_at   TEXT[] DEFAULT '{}',
    t_received_at   BIGINT[] DEFAULT '{}',
    t_details       TEXT[] DEFAULT '{}',
    m_message_id    TEXT[] DEFAULT '{}',
    m_endpoint_id   TEXT[] DEFAULT '{}',
    m_event_type    TEXT[] DEFAULT '{}',
    m_occurred_at   TEXT[] DEFAULT '{}',
    m_position      BIGINT[] DEFAULT '{}',
    m_data          TEXT[] DEFAULT '{}',
    m_shipment_id   TEXT[] DEFAULT '{}'
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
    INSERT INTO openings (position, pointer, value, salt, stream_type, stream_id)
    SELECT * FROM UNNEST(o_position, o_pointer, o_value, o_salt, o_stream_type, o_stream_id);
    INSERT INTO tracking_updates (update_id, shipment_id, status, occurred_at, received_at, details)
    SELECT * FROM UNNEST(t_update_id, t_shipment_id, t_status, t_occurred_at, t_received_at,
                         t_details);
    INSERT INTO webhook_outbox (message_id, endpoint_id, event_type, occurred_at, position, data,
                                shipment_id)
    SELECT * FROM UNNEST(m_message_id, m_endpoint_id, m_event_type, m_occurred_at, m_position,
                         m_data, m_shipment_id);
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
