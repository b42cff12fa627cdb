//! The SQL of [`super::LogWriter`] that is the same on SQLite and PostgreSQL, written once as
//! a macro each backend expands in its `impl LogWriter`.

/// The statements of [`super::LogWriter`] that are the same SQL on both backends, as items of a
/// backend's `impl LogWriter` for the sqlx database `$db`. The backend module provides
/// `tx(&mut Writer)`, the connection of the transaction under way, and the functions of
/// [`crate::reads::reads_backend!`].
macro_rules! writer_statements {
    ($db:ty) => {
        #[tracing::instrument(level = "trace", skip_all)]
        async fn rollback(&mut self) -> Result<(), sqlx::Error> {
            sqlx::query("ROLLBACK").execute(tx(self)?).await.map(drop)
        }

        #[tracing::instrument(level = "trace", skip_all)]
        async fn savepoint(&mut self) -> Result<(), sqlx::Error> {
            sqlx::query("SAVEPOINT one_append")
                .execute(tx(self)?)
                .await
                .map(drop)
        }

        #[tracing::instrument(level = "trace", skip_all)]
        async fn release_savepoint(&mut self) -> Result<(), sqlx::Error> {
            sqlx::query("RELEASE SAVEPOINT one_append")
                .execute(tx(self)?)
                .await
                .map(drop)
        }

        #[tracing::instrument(level = "trace", skip_all)]
        async fn drop_savepoint(&mut self) -> Result<(), sqlx::Error> {
            // One round trip for both statements.
            sqlx::raw_sql("ROLLBACK TO SAVEPOINT one_append; RELEASE SAVEPOINT one_append")
                .execute(tx(self)?)
                .await
                .map(drop)
        }

        #[tracing::instrument(level = "trace", skip_all)]
        async fn idempotency(
            &mut self,
            scope: &str,
            key: &str,
        ) -> Result<Option<IdempotencyRecord>, sqlx::Error> {
            idempotency_on(tx(self)?, scope, key).await
        }

        #[tracing::instrument(level = "trace", skip_all)]
        async fn insert_key(
            &mut self,
            claim: &IdempotencyClaim,
            first: Position,
            last: Position,
            time: &Self::Time,
        ) -> Result<(), sqlx::Error> {
            sqlx::query(
                "INSERT INTO idempotency_keys \
                 (scope, key, fingerprint, first_position, last_position, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&claim.scope)
            .bind(&claim.key)
            .bind(&claim.fingerprint)
            .bind(first.as_i64())
            .bind(last.as_i64())
            .bind(time)
            .execute(tx(self)?)
            .await
            .map(drop)
        }

        #[tracing::instrument(level = "trace", skip_all)]
        async fn insert_claim(
            &mut self,
            claim: &str,
            position: Position,
        ) -> Result<(), sqlx::Error> {
            sqlx::query("INSERT INTO unique_claims (claim, position) VALUES ($1, $2)")
                .bind(claim)
                .bind(position.as_i64())
                .execute(tx(self)?)
                .await
                .map(drop)
        }

        #[tracing::instrument(level = "trace", skip_all)]
        async fn upsert_credential(
            &mut self,
            credential: &Credential,
            position: Position,
        ) -> Result<(), sqlx::Error> {
            sqlx::query(
                "INSERT INTO credentials (principal_id, token_sha256, position) \
                 VALUES ($1, $2, $3) \
                 ON CONFLICT (principal_id) DO UPDATE \
                 SET token_sha256 = excluded.token_sha256, position = excluded.position",
            )
            .bind(&credential.principal_id)
            .bind(&credential.token_sha256)
            .bind(position.as_i64())
            .execute(tx(self)?)
            .await
            .map(drop)
        }

        #[tracing::instrument(level = "trace", skip_all, fields(rows = rows.len()))]
        async fn insert_openings(
            &mut self,
            rows: &[(&StoredEvent, &crate::event::OpenedField)],
        ) -> Result<(), sqlx::Error> {
            for chunk in rows.chunks(crate::write_path::ROWS_PER_STATEMENT) {
                let mut q = sqlx::QueryBuilder::<$db>::new(
                    "INSERT INTO openings (position, pointer, value, salt, stream_type, stream_id) ",
                );
                q.push_values(chunk, |mut row, (event, opening)| {
                    row.push_bind(event.position.as_i64())
                        .push_bind(opening.pointer.as_str())
                        .push_bind(opening.value.as_str())
                        .push_bind(opening.salt.as_str())
                        .push_bind(event.stream_type.as_str())
                        .push_bind(event.stream_id.as_str());
                });
                q.build().persistent(false).execute(tx(self)?).await?;
            }
            Ok(())
        }

        #[tracing::instrument(level = "trace", skip_all)]
        async fn insert_webhook_key(
            &mut self,
            key: &crate::event::WebhookKeyRow,
            position: Position,
        ) -> Result<(), sqlx::Error> {
            sqlx::query(
                "INSERT INTO webhook_keys (endpoint_id, public_key, secret, position) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(&key.endpoint_id)
            .bind(&key.public_key)
            .bind(&key.secret)
            .bind(position.as_i64())
            .execute(tx(self)?)
            .await
            .map(drop)
        }

        #[tracing::instrument(level = "trace", skip_all, fields(rows = rows.len()))]
        async fn insert_outbox(
            &mut self,
            rows: &[(&crate::event::OutboxMessage, Position)],
        ) -> Result<(), sqlx::Error> {
            for chunk in rows.chunks(crate::write_path::ROWS_PER_STATEMENT) {
                let mut q = sqlx::QueryBuilder::<$db>::new(
                    "INSERT INTO webhook_outbox \
                     (message_id, endpoint_id, event_type, occurred_at, position, data, \
                     shipment_id) ",
                );
                q.push_values(chunk, |mut row, (message, position)| {
                    row.push_bind(message.message_id.as_str())
                        .push_bind(message.endpoint_id.as_str())
                        .push_bind(message.event_type.as_str())
                        .push_bind(message.occurred_at.as_str())
                        .push_bind(position.as_i64())
                        .push_bind(message.data.as_str())
                        .push_bind(message.shipment_id.as_deref());
                });
                q.build().persistent(false).execute(tx(self)?).await?;
            }
            Ok(())
        }

        #[tracing::instrument(level = "trace", skip_all, fields(rows = rows.len()))]
        async fn insert_tracking(
            &mut self,
            rows: &[&crate::event::TrackingUpdateRow],
        ) -> Result<(), sqlx::Error> {
            for chunk in rows.chunks(crate::write_path::ROWS_PER_STATEMENT) {
                let mut q = sqlx::QueryBuilder::<$db>::new(
                    "INSERT INTO tracking_updates (update_id, shipment_id, status, occurred_at, \
                     received_at, details) ",
                );
                q.push_values(chunk, |mut row, u| {
                    row.push_bind(u.update_id.as_str())
                        .push_bind(u.shipment_id.as_str())
                        .push_bind(u.status.as_str())
                        .push_bind(u.occurred_at.as_str())
                        .push_bind(u.received_at)
                        .push_bind(u.details.as_str());
                });
                q.build().persistent(false).execute(tx(self)?).await?;
            }
            Ok(())
        }

        /// A few statements however many shipments: an erasure holds the write lock, which
        /// every decision waits on, for as short as it can.
        #[tracing::instrument(level = "trace", skip_all, fields(streams = erasure.streams.len()))]
        async fn erase(
            &mut self,
            erasure: &crate::event::Erasure,
            position: Position,
        ) -> Result<(), sqlx::Error> {
            let mut by_type: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
            for (stream_type, stream_id) in &erasure.streams {
                by_type.entry(stream_type).or_default().push(stream_id);
            }
            for (stream_type, ids) in by_type {
                if stream_type == "shipment" {
                    // Their tracking updates (SPEC §14) go with them, and the messages that
                    // carry one, sent or not.
                    for table in ["tracking_updates", "webhook_outbox"] {
                        for chunk in ids.chunks(crate::write_path::ROWS_PER_STATEMENT) {
                            let mut q = sqlx::QueryBuilder::<$db>::new(format!(
                                "DELETE FROM {table} WHERE shipment_id IN ("
                            ));
                            let mut list = q.separated(", ");
                            for id in chunk {
                                list.push_bind(*id);
                            }
                            q.push(")");
                            q.build().persistent(false).execute(tx(self)?).await?;
                        }
                    }
                }
                for chunk in ids.chunks(crate::write_path::ROWS_PER_STATEMENT) {
                    let mut q = sqlx::QueryBuilder::<$db>::new(
                        "DELETE FROM openings WHERE stream_type = ",
                    );
                    q.push_bind(stream_type).push(" AND stream_id IN (");
                    let mut list = q.separated(", ");
                    for id in chunk {
                        list.push_bind(*id);
                    }
                    q.push(")");
                    q.build().persistent(false).execute(tx(self)?).await?;
                }
            }
            for chunk in erasure.positions.chunks(crate::write_path::ROWS_PER_STATEMENT) {
                let mut q =
                    sqlx::QueryBuilder::<$db>::new("DELETE FROM openings WHERE position IN (");
                let mut list = q.separated(", ");
                for position in chunk {
                    list.push_bind(position.as_i64());
                }
                q.push(")");
                q.build().persistent(false).execute(tx(self)?).await?;
            }
            if let Some(before) = erasure.asked_before {
                sqlx::query(
                    "DELETE FROM openings \
                     WHERE pointer = '/payload/TrackingAccessDenied/tracking_number' \
                     AND position < $1",
                )
                .bind(before.as_i64())
                    .execute(tx(self)?)
                    .await?;
            }
            for chunk in erasure.claims.chunks(crate::write_path::ROWS_PER_STATEMENT) {
                let mut q = sqlx::QueryBuilder::<$db>::new("DELETE FROM unique_claims WHERE claim IN (");
                let mut list = q.separated(", ");
                for claim in chunk {
                    list.push_bind(claim.as_str());
                }
                q.push(")");
                q.build().persistent(false).execute(tx(self)?).await?;
            }
            for chunk in erasure.subjects.chunks(crate::write_path::ROWS_PER_STATEMENT) {
                let mut q = sqlx::QueryBuilder::<$db>::new(
                    "INSERT INTO erased_subjects (subject_digest, position) ",
                );
                q.push_values(chunk, |mut row, subject| {
                    row.push_bind(subject.as_str()).push_bind(position.as_i64());
                });
                q.push(" ON CONFLICT DO NOTHING");
                q.build().persistent(false).execute(tx(self)?).await?;
            }
            Ok(())
        }

        #[tracing::instrument(level = "trace", skip_all)]
        async fn events_between(
            &mut self,
            from: u64,
            end: u64,
        ) -> Result<Vec<StoredEvent>, sqlx::Error> {
            events_between(tx(self)?, from, end).await
        }
    };
}

pub(crate) use writer_statements;
