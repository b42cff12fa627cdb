//! The reads both backends answer with the same SQL: events by stream and by range, the log's
//! size, idempotency keys, checkpoints and stored tree hashes. Only the placeholder syntax and
//! the driver types differ, and sqlx takes `$N` placeholders on SQLite as on PostgreSQL, so one
//! macro body, [`reads_backend!`], serves both (as [`crate::gdpr`]'s does for the GDPR views).
//! The decision scan differs in a few words ([`decision_scan_backend!`]); the Merkle node
//! look-up, written differently per backend, stays in the backend's module.

use std::ops::Range;

use consent_ledger_audit::tree::Hash;

use crate::error::StoreError;
use crate::write_path::sql_index;

/// The stored leaves `leaves` from their `(idx, hash)` rows in order; a missing or malformed
/// one is corruption.
pub(crate) fn leaves_of_rows(
    leaves: Range<u64>,
    rows: &[(i64, Vec<u8>)],
) -> Result<Vec<Hash>, StoreError> {
    let mut hashes = Vec::with_capacity(rows.len());
    for (expected, (idx, hash)) in leaves.clone().zip(rows) {
        let corrupt = |detail: &str| StoreError::Corrupt {
            position: sql_index(expected),
            detail: detail.to_owned(),
        };
        if u64::try_from(*idx).ok() != Some(expected) {
            return Err(corrupt("merkle leaf missing"));
        }
        hashes.push(
            Hash::try_from(hash.as_slice()).map_err(|_| corrupt("merkle leaf is not 32 bytes"))?,
        );
    }
    if hashes.len() as u64 != leaves.end - leaves.start {
        return Err(StoreError::Corrupt {
            position: sql_index(leaves.start + hashes.len() as u64),
            detail: "merkle leaf missing".into(),
        });
    }
    Ok(hashes)
}

/// A stored subtree hash, or a decode error naming the row.
pub(crate) fn node_hash(level: i64, idx: i64, bytes: &[u8]) -> Result<Hash, sqlx::Error> {
    Hash::try_from(bytes).map_err(|_| {
        sqlx::Error::Decode(format!("merkle node ({level}, {idx}) is not 32 bytes").into())
    })
}

/// A failed look-up of tree hashes for a read: bytes that are no hash are corruption, anything
/// else the database's failure.
pub(crate) fn node_error(e: sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::Decode(detail) => StoreError::Corrupt {
            position: -1,
            detail: detail.to_string(),
        },
        e => StoreError::unavailable(e),
    }
}

/// Defines the shared read functions in a backend module, over `sqlx::Pool<$db>` (or one of
/// its connections). `$schema_int` is the Rust type of the `schema_version` column. The module
/// provides `recorded_at(&Row) -> Result<DateTime<Utc>, String>`, `time_bind(DateTime<Utc>)`
/// (what a time column takes) and `fetch_nodes(&mut Connection, &[NodeId])` (see
/// [`crate::write_path::LogWriter::fetch_nodes`]).
macro_rules! reads_backend {
    ($db:ty, $schema_int:ty) => {
        type Pool = sqlx::Pool<$db>;
        type Conn = <$db as sqlx::Database>::Connection;
        type DbRow = <$db as sqlx::Database>::Row;

        fn row_to_event(row: &DbRow) -> Result<StoredEvent, StoreError> {
            use sqlx::Row as _;
            let position: i64 = row.try_get("position").map_err(StoreError::unavailable)?;
            let corrupt = |detail: String| StoreError::Corrupt { position, detail };
            let text = |name: &str| {
                row.try_get::<String, _>(name)
                    .map_err(|e| corrupt(format!("{name}: {e}")))
            };
            let stream_version: i64 = row
                .try_get("stream_version")
                .map_err(|e| corrupt(format!("stream_version: {e}")))?;
            let schema_version: $schema_int = row
                .try_get("schema_version")
                .map_err(|e| corrupt(format!("schema_version: {e}")))?;
            let recorded_at =
                recorded_at(row).map_err(|e| corrupt(format!("recorded_at: {e}")))?;
            // Kept as the text it was written as: a reader decodes it into its typed event,
            // and the leaf hashes exactly these bytes, so a stored payload changed in any way
            // shows in the tree.
            let payload = Payload::stored(text("payload")?);
            Ok(StoredEvent {
                position: Position::from_i64(position),
                stream_type: text("stream_type")?,
                stream_id: text("stream_id")?,
                stream_version: u64::try_from(stream_version)
                    .map_err(|e| corrupt(e.to_string()))?,
                event_type: text("event_type")?,
                schema_version: u32::try_from(schema_version)
                    .map_err(|e| corrupt(e.to_string()))?,
                actor: text("actor")?,
                request_id: text("request_id")?,
                recorded_at,
                payload,
                openings: Vec::new(),
            })
        }

        /// Attaches to each sealed event of `events` the openings of its fields that are not
        /// erased (SPEC §12): one look-up per event when there are few, else one range.
        pub(crate) async fn attach_openings<E: crate::event::Sealable>(
            pool: &Pool,
            events: &mut [E],
        ) -> Result<(), StoreError> {
            use sqlx::Row as _;
            let sealed: Vec<usize> = (0..events.len())
                .filter(|&i| crate::event::is_sealed(events[i].payload_text()))
                .collect();
            let (Some(&first), Some(&last)) = (sealed.first(), sealed.last()) else {
                return Ok(());
            };
            let (lo, hi) = (events[first].position(), events[last].position());
            let span = lo.get().abs_diff(hi.get());
            // Events far apart (a shipment's, selected through an index) are looked up by
            // position; a page of the log reads the openings of its range.
            let rows = if sealed.len() <= 8 || span > 16 * sealed.len() as u64 {
                let mut rows = Vec::new();
                for chunk in sealed.chunks(crate::write_path::ROWS_PER_STATEMENT) {
                    let mut q = sqlx::QueryBuilder::<$db>::new(
                        "SELECT position, pointer, value, salt FROM openings WHERE position IN (",
                    );
                    let mut list = q.separated(", ");
                    for &i in chunk {
                        list.push_bind(events[i].position().as_i64());
                    }
                    q.push(")");
                    rows.extend(fetch_rows(pool, q).await?);
                }
                rows
            } else {
                sqlx::query(
                    "SELECT position, pointer, value, salt FROM openings \
                     WHERE position >= $1 AND position <= $2",
                )
                .bind(lo.min(hi).as_i64())
                .bind(lo.max(hi).as_i64())
                .fetch_all(pool)
                .await
                .map_err(StoreError::unavailable)?
            };
            let at: std::collections::HashMap<Position, usize> =
                sealed.iter().map(|&i| (events[i].position(), i)).collect();
            for row in rows {
                let position: i64 = row.try_get("position").map_err(StoreError::unavailable)?;
                let Some(&i) = at.get(&Position::from_i64(position)) else {
                    continue;
                };
                events[i].openings_mut().push(crate::event::OpenedField {
                    pointer: row.try_get("pointer").map_err(StoreError::unavailable)?,
                    value: row.try_get("value").map_err(StoreError::unavailable)?,
                    salt: row.try_get("salt").map_err(StoreError::unavailable)?,
                });
            }
            Ok(())
        }

        /// The kept openings of the shipments `ids`' registrations, as (shipment id, pointer,
        /// value): what an erasure of them deletes, in one statement per thousand.
        #[tracing::instrument(level = "debug", skip_all, fields(shipments = ids.len()))]
        pub(crate) async fn shipment_openings(
            pool: &Pool,
            ids: &[String],
        ) -> Result<Vec<(String, String, String)>, StoreError> {
            use sqlx::Row as _;
            let mut found = Vec::new();
            for chunk in ids.chunks(crate::write_path::ROWS_PER_STATEMENT) {
                let mut q = sqlx::QueryBuilder::<$db>::new(
                    "SELECT stream_id, pointer, value FROM openings \
                     WHERE stream_type = 'shipment' AND stream_id IN (",
                );
                let mut list = q.separated(", ");
                for id in chunk {
                    list.push_bind(id.as_str());
                }
                q.push(")");
                for row in fetch_rows(pool, q).await? {
                    found.push((
                        row.try_get("stream_id").map_err(StoreError::unavailable)?,
                        row.try_get("pointer").map_err(StoreError::unavailable)?,
                        row.try_get("value").map_err(StoreError::unavailable)?,
                    ));
                }
            }
            Ok(found)
        }

        /// The positions of denials of unknown parcels that recorded one of `numbers` and
        /// whose opening is kept.
        #[tracing::instrument(level = "debug", skip_all, fields(numbers = numbers.len()))]
        pub(crate) async fn asked_positions(
            pool: &Pool,
            numbers: &[String],
        ) -> Result<Vec<Position>, StoreError> {
            let mut found = Vec::new();
            for chunk in numbers.chunks(crate::write_path::ROWS_PER_STATEMENT) {
                // The pointer as a literal, so that the planner takes the partial index.
                let mut q = sqlx::QueryBuilder::<$db>::new(
                    "SELECT position FROM openings \
                     WHERE pointer = '/payload/TrackingAccessDenied/tracking_number' \
                     AND value IN (",
                );
                let mut list = q.separated(", ");
                for number in chunk {
                    list.push_bind(number.as_str());
                }
                q.push(")");
                let rows: Vec<i64> = q
                    .build_query_scalar()
                    .persistent(false)
                    .fetch_all(pool)
                    .await
                    .map_err(StoreError::unavailable)?;
                found.extend(rows.into_iter().map(Position::from_i64));
            }
            Ok(found)
        }

        /// Whether a denial of an unknown parcel recorded before `before` still has its
        /// number.
        #[tracing::instrument(level = "debug", skip_all)]
        pub(crate) async fn asked_before(pool: &Pool, before: Position) -> Result<bool, StoreError> {
            let found: Option<i64> = sqlx::query_scalar(
                "SELECT position FROM openings \
                 WHERE pointer = '/payload/TrackingAccessDenied/tracking_number' \
                 AND position < $1 LIMIT 1",
            )
            .bind(before.as_i64())
            .fetch_optional(pool)
            .await
            .map_err(StoreError::unavailable)?;
            Ok(found.is_some())
        }

        /// The shipments (ids) registered with this recipient reference whose openings are
        /// kept, i.e. not erased.
        #[tracing::instrument(level = "debug", skip_all)]
        pub(crate) async fn recipient_shipments(
            pool: &Pool,
            recipient_ref: &str,
        ) -> Result<Vec<String>, StoreError> {
            sqlx::query_scalar(
                "SELECT stream_id FROM openings \
                 WHERE pointer = '/payload/ShipmentRegistered/recipient_ref' AND value = $1 \
                 ORDER BY position",
            )
            .bind(recipient_ref)
            .fetch_all(pool)
            .await
            .map_err(StoreError::unavailable)
        }

        /// The positions of the erasures that erased a recipient reference with this digest.
        #[tracing::instrument(level = "debug", skip_all)]
        pub(crate) async fn erasures_of_subject(
            pool: &Pool,
            digest: &str,
        ) -> Result<Vec<Position>, StoreError> {
            let rows: Vec<i64> = sqlx::query_scalar(
                "SELECT position FROM erased_subjects WHERE subject_digest = $1 ORDER BY position",
            )
            .bind(digest)
            .fetch_all(pool)
            .await
            .map_err(StoreError::unavailable)?;
            Ok(rows.into_iter().map(Position::from_i64).collect())
        }

        /// Up to `limit` shipments (position of registration, id) registered before position
        /// `before` and after `after`, whose tracking number is not erased: retention's
        /// candidates, in log order.
        #[tracing::instrument(level = "debug", skip_all)]
        pub(crate) async fn unerased_shipments(
            pool: &Pool,
            after: Option<Position>,
            before: Position,
            limit: u32,
        ) -> Result<Vec<(Position, String)>, StoreError> {
            use sqlx::Row as _;
            let rows = sqlx::query(
                "SELECT position, stream_id FROM openings \
                 WHERE position > $1 AND position < $2 \
                 AND pointer = '/payload/ShipmentRegistered/tracking_number' \
                 ORDER BY position LIMIT $3",
            )
            .bind(after.map_or(-1, Position::as_i64))
            .bind(before.as_i64())
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await
            .map_err(StoreError::unavailable)?;
            rows.iter()
                .map(|row| {
                    Ok((
                        Position::from_i64(row.try_get("position")?),
                        row.try_get("stream_id")?,
                    ))
                })
                .collect::<Result<_, sqlx::Error>>()
                .map_err(StoreError::unavailable)
        }

        /// The events at `positions` (ascending), in log order: one statement per thousand,
        /// each a set of look-ups by the log's primary key.
        #[tracing::instrument(level = "debug", skip_all, fields(positions = positions.len()))]
        pub(crate) async fn read_positions(
            pool: &Pool,
            positions: &[u64],
        ) -> Result<Vec<StoredEvent>, StoreError> {
            let mut events = Vec::with_capacity(positions.len());
            for chunk in positions.chunks(crate::write_path::ROWS_PER_STATEMENT) {
                let mut q = sqlx::QueryBuilder::<$db>::new(concat!(
                    "SELECT ",
                    event_columns!(),
                    " FROM events WHERE position IN ("
                ));
                let mut list = q.separated(", ");
                for &p in chunk {
                    list.push_bind(i64::try_from(p).unwrap_or(i64::MAX));
                }
                q.push(") ORDER BY position");
                events.extend(fetch_events(pool, q).await?);
            }
            attach_openings(pool, &mut events).await?;
            Ok(events)
        }

        /// The rows of a statement built once (not kept among the prepared statements).
        async fn fetch_rows(
            pool: &Pool,
            mut q: sqlx::QueryBuilder<$db>,
        ) -> Result<Vec<DbRow>, StoreError> {
            q.build()
                .persistent(false)
                .fetch_all(pool)
                .await
                .map_err(StoreError::unavailable)
        }

        /// The events a statement selects (its columns those of `event_columns!`).
        async fn fetch_events(
            pool: &Pool,
            q: sqlx::QueryBuilder<$db>,
        ) -> Result<Vec<StoredEvent>, StoreError> {
            fetch_rows(pool, q).await?.iter().map(row_to_event).collect()
        }

        /// Every event of the streams `ids` of one type recorded before position `before`, in
        /// log order — of access decisions' streams, those after the decision, which is not in
        /// the stream index: one statement per thousand streams, each a range of the stream
        /// index (an export selecting decisions through the GDPR tables reads the cancellations
        /// recorded on their streams this way).
        #[tracing::instrument(level = "debug", skip_all, fields(streams = ids.len()))]
        pub(crate) async fn read_streams(
            pool: &Pool,
            stream_type: &str,
            ids: &[String],
            before: u64,
        ) -> Result<Vec<StoredEvent>, StoreError> {
            let mut events = Vec::new();
            for chunk in ids.chunks(crate::write_path::ROWS_PER_STATEMENT) {
                let q = streams_query("", stream_type, chunk, before);
                events.extend(fetch_events(pool, q).await?);
            }
            events.sort_unstable_by_key(|e| e.position);
            attach_openings(pool, &mut events).await?;
            Ok(events)
        }

        /// The statement of [`read_streams`] for the streams `ids`, after `prefix` (tests put
        /// `EXPLAIN QUERY PLAN` there): ranges of the stream index, whose condition it names.
        fn streams_query(
            prefix: &str,
            stream_type: &str,
            ids: &[String],
            before: u64,
        ) -> sqlx::QueryBuilder<$db> {
            let mut q = stream_index_query(prefix, stream_type);
            q.push(" AND stream_id IN (");
            let mut list = q.separated(", ");
            for id in ids {
                list.push_bind(id.as_str());
            }
            q.push(") AND position < ")
                .push_bind(i64::try_from(before).unwrap_or(i64::MAX));
            q
        }

        /// The statement of [`read_stream`], after `prefix` (tests put `EXPLAIN QUERY PLAN`
        /// there): one range of the stream index.
        fn stream_query(
            prefix: &str,
            stream_type: &str,
            stream_id: &str,
        ) -> sqlx::QueryBuilder<$db> {
            let mut q = stream_index_query(prefix, stream_type);
            q.push(" AND stream_id = ")
                .push_bind(stream_id)
                .push(" ORDER BY stream_version");
            q
        }

        /// The events of one stream type in the stream index, after `prefix`: the index's
        /// condition word for word, then the type.
        fn stream_index_query(prefix: &str, stream_type: &str) -> sqlx::QueryBuilder<$db> {
            let mut q = sqlx::QueryBuilder::<$db>::new(prefix);
            q.push(concat!(
                "SELECT ",
                event_columns!(),
                " FROM events WHERE ",
                in_stream_index!(),
                " AND stream_type = "
            ))
            .push_bind(stream_type);
            q
        }

        /// Every event of one stream in the stream index, in stream order.
        #[tracing::instrument(level = "debug", skip_all, fields(stream_type = stream_type))]
        pub(crate) async fn read_stream(
            pool: &Pool,
            stream_type: &str,
            stream_id: &str,
        ) -> Result<Vec<StoredEvent>, StoreError> {
            let rows = stream_query("", stream_type, stream_id)
                .build()
                .fetch_all(pool)
                .await
                .map_err(StoreError::unavailable)?;
            let mut events = rows.iter().map(row_to_event).collect::<Result<Vec<_>, _>>()?;
            attach_openings(pool, &mut events).await?;
            Ok(events)
        }

        /// Up to `limit` events from position `from` on, in log order, a row per event (on
        /// SQLite, what `sqlite::pages::read_pages` falls back on).
        #[tracing::instrument(level = "debug", skip_all, fields(from = from.get(), limit = limit))]
        pub(crate) async fn read_range(
            pool: &Pool,
            from: Position,
            limit: u32,
        ) -> Result<Vec<StoredEvent>, StoreError> {
            let rows = sqlx::query(concat!(
                "SELECT ",
                event_columns!(),
                " FROM events WHERE position >= $1 ORDER BY position LIMIT $2"
            ))
            .bind(from.as_i64())
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await
            .map_err(StoreError::unavailable)?;
            let mut events = rows.iter().map(row_to_event).collect::<Result<Vec<_>, _>>()?;
            attach_openings(pool, &mut events).await?;
            Ok(events)
        }

        /// Up to [`BACKFILL_PAGE`] events of positions `from..end`, in order, on the writer's
        /// connection (inside its transaction).
        #[tracing::instrument(level = "debug", skip_all, fields(from = from, end = end))]
        pub(crate) async fn events_between(
            conn: &mut Conn,
            from: u64,
            end: u64,
        ) -> Result<Vec<StoredEvent>, sqlx::Error> {
            let rows = sqlx::query(concat!(
                "SELECT ",
                event_columns!(),
                " FROM events WHERE position >= $1 AND position < $2 ORDER BY position LIMIT $3"
            ))
            .bind(sql_index(from))
            .bind(sql_index(end))
            .bind(i64::from(BACKFILL_PAGE))
            .fetch_all(&mut *conn)
            .await?;
            rows.iter()
                .map(|row| row_to_event(row).map_err(|e| sqlx::Error::Decode(Box::new(e))))
                .collect()
        }

        /// Up to `limit` events of positions `from..end`, leaving out stream type `skipped`,
        /// with payloads left as text.
        #[tracing::instrument(
            level = "debug",
            skip_all,
            fields(from = from.get(), end = end.get(), limit = limit, skipped = skipped)
        )]
        pub(crate) async fn read_range_except(
            pool: &Pool,
            from: Position,
            end: Position,
            limit: u32,
            skipped: &str,
        ) -> Result<Vec<RawEvent>, StoreError> {
            use sqlx::Row as _;
            let rows = sqlx::query(
                "SELECT position, stream_type, stream_id, event_type, actor, payload FROM events \
                 WHERE position >= $1 AND position < $2 AND stream_type <> $3 \
                 ORDER BY position LIMIT $4",
            )
            .bind(from.as_i64())
            .bind(end.as_i64())
            .bind(skipped)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await
            .map_err(StoreError::unavailable)?;
            let mut events = rows
                .iter()
                .map(|row| -> Result<RawEvent, sqlx::Error> {
                    Ok(RawEvent {
                        position: Position::from_i64(row.try_get("position")?),
                        stream_type: row.try_get("stream_type")?,
                        stream_id: row.try_get("stream_id")?,
                        event_type: row.try_get("event_type")?,
                        actor: row.try_get("actor")?,
                        payload: row.try_get("payload")?,
                        openings: Vec::new(),
                    })
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(StoreError::unavailable)?;
            attach_openings(pool, &mut events).await?;
            Ok(events)
        }

        /// The position the next committed event will get, i.e. the log's size.
        #[tracing::instrument(level = "debug", skip_all)]
        pub(crate) async fn next_position(pool: &Pool) -> Result<Position, StoreError> {
            let next: i64 =
                sqlx::query_scalar("SELECT COALESCE(MAX(position) + 1, 0) FROM events")
                    .fetch_one(pool)
                    .await
                    .map_err(StoreError::unavailable)?;
            Ok(Position::from_i64(next))
        }

        /// What an earlier request with this idempotency key committed, if any.
        #[tracing::instrument(level = "debug", skip_all)]
        pub(crate) async fn idempotency(
            pool: &Pool,
            scope: &str,
            key: &str,
        ) -> Result<Option<IdempotencyRecord>, StoreError> {
            let mut conn = pool.acquire().await.map_err(StoreError::unavailable)?;
            idempotency_on(&mut conn, scope, key)
                .await
                .map_err(StoreError::unavailable)
        }

        /// The principal whose current credential `token_sha256` is, and where it was issued.
        #[tracing::instrument(level = "debug", skip_all)]
        pub(crate) async fn credential(
            pool: &Pool,
            token_sha256: &str,
        ) -> Result<Option<IssuedCredential>, StoreError> {
            let row: Option<(String, i64)> = sqlx::query_as(
                "SELECT principal_id, position FROM credentials WHERE token_sha256 = $1",
            )
            .bind(token_sha256)
            .fetch_optional(pool)
            .await
            .map_err(StoreError::unavailable)?;
            Ok(row.map(|(principal_id, position)| IssuedCredential {
                principal_id,
                issued_at: Position::from_i64(position),
            }))
        }

        #[tracing::instrument(level = "trace", skip_all)]
        pub(crate) async fn idempotency_on(
            conn: &mut Conn,
            scope: &str,
            key: &str,
        ) -> Result<Option<IdempotencyRecord>, sqlx::Error> {
            let row: Option<(String, i64, i64)> = sqlx::query_as(
                "SELECT fingerprint, first_position, last_position FROM idempotency_keys \
                 WHERE scope = $1 AND key = $2",
            )
            .bind(scope)
            .bind(key)
            .fetch_optional(&mut *conn)
            .await?;
            Ok(row.map(|(fingerprint, first, last)| IdempotencyRecord {
                fingerprint,
                first_position: Position::from_i64(first),
                last_position: Position::from_i64(last),
            }))
        }

        /// Keeps a signed checkpoint (once per tree size: any node may sign the same size).
        #[tracing::instrument(level = "debug", skip_all, fields(size = size))]
        pub(crate) async fn save_checkpoint(
            pool: &Pool,
            size: u64,
            root: &Hash,
            note: &str,
        ) -> Result<(), StoreError> {
            sqlx::query(
                "INSERT INTO checkpoints (tree_size, root, note, signed_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (tree_size) DO NOTHING",
            )
            .bind(sql_index(size))
            .bind(root.as_slice())
            .bind(note)
            .bind(time_bind(Utc::now()))
            .execute(pool)
            .await
            .map_err(StoreError::unavailable)?;
            Ok(())
        }

        /// The newest kept checkpoint at or below `max_size` (tree size, note), if any.
        #[tracing::instrument(level = "debug", skip_all, fields(max_size = max_size))]
        pub(crate) async fn checkpoint_at_most(
            pool: &Pool,
            max_size: u64,
        ) -> Result<Option<(u64, String)>, StoreError> {
            let row: Option<(i64, String)> = sqlx::query_as(
                "SELECT tree_size, note FROM checkpoints WHERE tree_size <= $1 \
                 ORDER BY tree_size DESC LIMIT 1",
            )
            .bind(sql_index(max_size))
            .fetch_optional(pool)
            .await
            .map_err(StoreError::unavailable)?;
            Ok(row.map(|(size, note)| (u64::try_from(size).unwrap_or(0), note)))
        }

        /// Every kept checkpoint, oldest first: (tree size, signed note).
        #[tracing::instrument(level = "debug", skip_all)]
        pub(crate) async fn checkpoints(pool: &Pool) -> Result<Vec<(u64, String)>, StoreError> {
            let rows: Vec<(i64, String)> =
                sqlx::query_as("SELECT tree_size, note FROM checkpoints ORDER BY tree_size")
                    .fetch_all(pool)
                    .await
                    .map_err(StoreError::unavailable)?;
            Ok(rows
                .into_iter()
                .map(|(size, note)| (u64::try_from(size).unwrap_or(0), note))
                .collect())
        }

        /// Stored leaf hashes (level 0 of the tree) from position `from` on, a row per leaf
        /// (on SQLite, what `sqlite::pages::leaf_hashes` falls back on).
        #[tracing::instrument(level = "debug", skip_all, fields(from = from, limit = limit))]
        pub(crate) async fn leaf_hashes_rows(
            pool: &Pool,
            from: u64,
            limit: u32,
        ) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
            let rows: Vec<(i64, Vec<u8>)> = sqlx::query_as(
                "SELECT idx, hash FROM merkle_nodes WHERE level = 0 AND idx >= $1 \
                 ORDER BY idx LIMIT $2",
            )
            .bind(sql_index(from))
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await
            .map_err(StoreError::unavailable)?;
            Ok(rows
                .into_iter()
                .map(|(i, h)| (u64::try_from(i).unwrap_or(u64::MAX), h))
                .collect())
        }

        /// The stored leaf hashes of positions `leaves`, in order; every one must be there.
        #[tracing::instrument(
            level = "debug",
            skip_all,
            fields(start = leaves.start, end = leaves.end)
        )]
        pub(crate) async fn leaf_range(
            pool: &Pool,
            leaves: std::ops::Range<u64>,
        ) -> Result<Vec<Hash>, StoreError> {
            let rows: Vec<(i64, Vec<u8>)> = sqlx::query_as(
                "SELECT idx, hash FROM merkle_nodes WHERE level = 0 AND idx >= $1 AND idx < $2 \
                 ORDER BY idx",
            )
            .bind(sql_index(leaves.start))
            .bind(sql_index(leaves.end))
            .fetch_all(pool)
            .await
            .map_err(StoreError::unavailable)?;
            crate::reads::leaves_of_rows(leaves, &rows)
        }

        /// The hashes of `nodes`, from stored subtrees, in order (for roots and proofs).
        #[tracing::instrument(level = "debug", skip_all, fields(nodes = nodes.len()))]
        pub(crate) async fn node_hashes(
            pool: &Pool,
            nodes: &[NodeId],
        ) -> Result<Vec<Hash>, StoreError> {
            let mut conn = pool.acquire().await.map_err(StoreError::unavailable)?;
            let hashes = fetch_nodes(&mut conn, nodes)
                .await
                .map_err(crate::reads::node_error)?;
            nodes
                .iter()
                .zip(hashes)
                .map(|(node, hash)| {
                    hash.ok_or_else(|| StoreError::Corrupt {
                        position: -1,
                        detail: format!("merkle node {node:?} missing"),
                    })
                })
                .collect()
        }

        /// `MTH` of the first `size` events, from stored subtrees (RFC 9162 §2.1.1).
        #[tracing::instrument(level = "debug", skip_all, fields(size = size))]
        pub(crate) async fn tree_root(pool: &Pool, size: u64) -> Result<Hash, StoreError> {
            let hashes = node_hashes(pool, &root_nodes(size)).await?;
            let edge = Frontier::from_parts(size, hashes).map_err(|e| StoreError::Corrupt {
                position: -1,
                detail: e.to_string(),
            })?;
            Ok(edge.root())
        }
    };
}

pub(crate) use reads_backend;

/// One piece of the decision scan's statement ([`decision_scan_parts`]): SQL text, or a value
/// bound where it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ScanPart {
    Sql(String),
    Int(i64),
    Text(String),
}

/// How a backend's SQL words the decision scan: its substring search (SQLite's `instr`,
/// PostgreSQL's `strpos`), how the statement names the events table, and how a text field's
/// value is compared byte by byte.
pub(crate) struct ScanDialect {
    pub(crate) find: &'static str,
    pub(crate) events: &'static str,
    pub(crate) collate: &'static str,
}

/// The statement of `Store::read_decisions`, selecting `columns`, as pieces of SQL and the
/// values bound between them: the events of positions `range` that `scan` lets through, in
/// order. Its texts are searched in C, no JSON parsed for events left out.
pub(crate) fn decision_scan_parts(
    columns: &str,
    dialect: &ScanDialect,
    range: Range<u64>,
    scan: &crate::DecisionScan,
) -> Vec<ScanPart> {
    let sql = |text: &str| ScanPart::Sql(text.to_owned());
    let find = dialect.find;
    let mut q = vec![
        ScanPart::Sql(format!(
            "SELECT {columns} FROM {} WHERE position >= ",
            dialect.events
        )),
        ScanPart::Int(sql_index(range.start)),
        sql(" AND position < "),
        ScanPart::Int(sql_index(range.end)),
        sql(" AND ((stream_type = "),
        ScanPart::Text(scan.stream_type.clone()),
    ];
    if let Some(event_type) = &scan.event_type {
        q.push(sql(" AND event_type = "));
        q.push(ScanPart::Text(event_type.clone()));
    }
    for group in scan.payload_contains.iter().filter(|g| !g.is_empty()) {
        q.push(sql(" AND ("));
        for (i, text) in group.iter().enumerate() {
            if i > 0 {
                q.push(sql(" OR "));
            }
            q.push(ScanPart::Sql(format!("{find}(payload, ")));
            q.push(ScanPart::Text(text.clone()));
            q.push(sql(") > 0"));
        }
        q.push(sql(")"));
    }
    if let Some(field) = &scan.text_field {
        // The value's first characters after the field's first `"key":"`; the two numbers
        // are the pattern's length and the field's, not input.
        let pattern = format!("\"{}\":\"", field.key);
        let value = format!(
            ") + {}, {}){}",
            pattern.chars().count(),
            field.chars,
            dialect.collate
        );
        // A payload without the field is let through: the reader decides.
        for (bound, op) in [(&field.min, " >= "), (&field.max, " <= ")] {
            if let Some(bound) = bound {
                q.push(ScanPart::Sql(format!(" AND ({find}(payload, ")));
                q.push(ScanPart::Text(pattern.clone()));
                q.push(ScanPart::Sql(format!(
                    ") = 0 OR substr(payload, {find}(payload, "
                )));
                q.push(ScanPart::Text(pattern.clone()));
                q.push(ScanPart::Sql(format!("{value}{op}")));
                q.push(ScanPart::Text(bound.clone()));
                q.push(sql(")"));
            }
        }
    }
    q.push(sql(")"));
    if let Some((stream_type, stream_id)) = &scan.also {
        q.push(sql(" OR (stream_type = "));
        q.push(ScanPart::Text(stream_type.clone()));
        q.push(sql(" AND stream_id = "));
        q.push(ScanPart::Text(stream_id.clone()));
        q.push(sql(")"));
    }
    if !scan.also_types.is_empty() {
        q.push(sql(" OR stream_type IN ("));
        for (i, stream_type) in scan.also_types.iter().enumerate() {
            if i > 0 {
                q.push(sql(", "));
            }
            q.push(ScanPart::Text(stream_type.clone()));
        }
        q.push(sql(")"));
    }
    q.push(sql(") ORDER BY position"));
    q
}

/// The second of a delivery's cancellation (SPEC §14) as its payload stores it (RFC 3339 in
/// UTC, the payload's first field): the key of the log's index `events_cancelled_at`
/// (migrations), which a statement must spell as the index does for the planner to take it.
pub(crate) fn cancelled_second(dialect: &ScanDialect) -> String {
    format!(
        "substr(payload, {}(payload, '\"cancelled_at\":\"') + 16, 19){}",
        dialect.find, dialect.collate
    )
}

/// The decision scan of `Store::read_decisions` for the sqlx database `$db` in `$dialect`
/// ([`decision_scan_parts`]), a row at a time through sqlx: the events of a range of
/// positions a [`crate::DecisionScan`] lets through, in order.
macro_rules! decision_scan_backend {
    ($db:ty, $dialect:expr) => {
        /// The events of positions `range` that `scan` lets through, in order (see
        /// [`DecisionScan`]), read a row at a time through sqlx.
        #[tracing::instrument(level = "debug", skip_all, fields(start = range.start, end = range.end))]
        pub(crate) async fn read_decisions_rows(
            pool: &sqlx::Pool<$db>,
            range: std::ops::Range<u64>,
            scan: &DecisionScan,
        ) -> Result<Vec<StoredEvent>, StoreError> {
            let rows = decision_scan_query("", range, scan)
                .build()
                .persistent(false)
                .fetch_all(pool)
                .await
                .map_err(StoreError::unavailable)?;
            let mut events = rows
                .iter()
                .map(row_to_event)
                .collect::<Result<Vec<_>, _>>()?;
            attach_openings(pool, &mut events).await?;
            Ok(events)
        }

        /// The positions before `before` of the deliveries' cancellations (SPEC §14) whose
        /// time lies in the seconds `from ..= to` (RFC 3339 cut to the second, as
        /// [`crate::TextFieldRange`] bounds them), in log order: one range of the log's index
        /// `events_cancelled_at`, whatever the log's size.
        #[tracing::instrument(level = "debug", skip_all, fields(before = before))]
        pub(crate) async fn cancellations(
            pool: &sqlx::Pool<$db>,
            from: Option<&str>,
            to: Option<&str>,
            before: u64,
        ) -> Result<Vec<u64>, StoreError> {
            let positions: Vec<i64> = cancellations_query("", from, to, before)
                .build_query_scalar()
                .persistent(false)
                .fetch_all(pool)
                .await
                .map_err(StoreError::unavailable)?;
            Ok(positions
                .into_iter()
                .filter_map(|p| u64::try_from(p).ok())
                .collect())
        }

        /// The statement of [`cancellations`], after `prefix` (tests put `EXPLAIN QUERY PLAN`
        /// there). The event type as a literal, so that the planner takes the partial index;
        /// both bounds always, and `+position`, so that it never walks the log's rowid instead.
        fn cancellations_query(
            prefix: &str,
            from: Option<&str>,
            to: Option<&str>,
            before: u64,
        ) -> sqlx::QueryBuilder<$db> {
            let second = crate::reads::cancelled_second(&$dialect);
            let mut q = sqlx::QueryBuilder::<$db>::new(format!(
                "{prefix}SELECT position FROM events \
                 WHERE event_type = 'TrackingDeliveryCancelled' AND {second} >= "
            ));
            q.push_bind(from.unwrap_or_default().to_owned());
            // `~` sorts after every character of a time.
            q.push(format!(" AND {second} <= "))
                .push_bind(to.unwrap_or("~").to_owned());
            q.push(" AND +position < ")
                .push_bind(crate::write_path::sql_index(before));
            q.push(" ORDER BY position");
            q
        }

        /// The statement of [`read_decisions_rows`], after `prefix` (tests put `EXPLAIN QUERY
        /// PLAN` there).
        fn decision_scan_query(
            prefix: &str,
            range: std::ops::Range<u64>,
            scan: &DecisionScan,
        ) -> sqlx::QueryBuilder<$db> {
            use crate::reads::ScanPart;
            let mut q = sqlx::QueryBuilder::<$db>::new(prefix);
            for part in crate::reads::decision_scan_parts(event_columns!(), &$dialect, range, scan)
            {
                match part {
                    ScanPart::Sql(text) => q.push(text),
                    ScanPart::Int(value) => q.push_bind(value),
                    ScanPart::Text(value) => q.push_bind(value),
                };
            }
            q
        }
    };
}

pub(crate) use decision_scan_backend;
