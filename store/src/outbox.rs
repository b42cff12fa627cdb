//! Delivering the webhook outbox (SPEC §13, docs/adr/0010): what a node's delivery worker
//! claims, what it records of each attempt, and what a partner reads back. The outbox rows
//! themselves are written by the group commit with the event that causes them
//! ([`crate::write_path`]); everything here runs on the read pool, in short transactions of
//! its own, never in the group commit.
//!
//! Times are Unix milliseconds. A claimed message carries a lease (`claimed_until`): on
//! several nodes (PostgreSQL) the claim skips rows another node is claiming
//! (`FOR UPDATE SKIP LOCKED`) and rows it holds, so each message is attempted by one node at
//! a time; a node that died lets its lease run out and another takes the message over.

use crate::event::QueuedMessage;
use crate::{on_backend, Store, StoreError};

/// What became of a message after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// A 2xx answer.
    Delivered,
    /// Failed; attempted again at this time (Unix ms).
    RetryAt(i64),
    /// Failed, and not attempted again (the schedule is spent, or the endpoint is gone).
    GivenUp,
    /// Not sent and never to be: checked right before sending, what allowed it no longer
    /// holds (SPEC §14).
    Cancelled,
}

impl AttemptOutcome {
    fn state(self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::RetryAt(_) => "pending",
            Self::GivenUp => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    fn next_attempt_at(self) -> Option<i64> {
        match self {
            Self::RetryAt(at) => Some(at),
            _ => None,
        }
    }
}

/// One attempt, as a worker records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRecord {
    pub message_id: String,
    pub endpoint_id: String,
    pub attempted_at: i64,
    /// The HTTP status, when an answer came.
    pub status: Option<u16>,
    /// What went wrong without an answer (or with a refused one): a short kind, never a body,
    /// a header or an address.
    pub error: Option<String>,
    pub latency_ms: i64,
    pub outcome: AttemptOutcome,
}

/// One recorded attempt, as `GET /v1/webhook-endpoints/{id}/deliveries` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryAttempt {
    pub message_id: String,
    pub event_type: String,
    /// 1 for the first attempt.
    pub attempt: u32,
    pub attempted_at: i64,
    pub status: Option<u16>,
    pub error: Option<String>,
    pub latency_ms: i64,
    /// When the message is attempted next, if it is still pending.
    pub next_attempt_at: Option<i64>,
    /// The message's state now: pending, delivered, failed or cancelled.
    pub state: String,
}

/// Where a page of attempts starts: strictly after this attempt, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptCursor {
    pub attempted_at: i64,
    pub message_id: String,
    pub attempt: u32,
}

impl AttemptCursor {
    /// Before every attempt: the first page.
    pub fn start() -> Self {
        Self {
            attempted_at: i64::MAX,
            message_id: String::new(),
            attempt: u32::MAX,
        }
    }

    /// The cursor after `attempt`, for the next page.
    pub fn after(attempt: &DeliveryAttempt) -> Self {
        Self {
            attempted_at: attempt.attempted_at,
            message_id: attempt.message_id.clone(),
            attempt: attempt.attempt,
        }
    }

    /// As the API passes it: `<Unix ms>.<message id>.<attempt>`.
    pub fn encode(&self) -> String {
        format!("{}.{}.{}", self.attempted_at, self.message_id, self.attempt)
    }

    pub fn decode(text: &str) -> Option<Self> {
        let mut parts = text.splitn(3, '.');
        let attempted_at = parts.next()?.parse().ok()?;
        let message_id = parts.next()?.to_owned();
        let attempt = parts.next()?.parse().ok()?;
        Some(Self {
            attempted_at,
            message_id,
            attempt,
        })
    }
}

/// A queued message's owner and state, for a redelivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageState {
    pub endpoint_id: String,
    pub state: String,
    pub attempts: u32,
}

/// How much a claim may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClaimLimits {
    /// Now (Unix ms): rows due at or before it, and not held by a lease past it.
    pub now: i64,
    /// The lease the claimed rows get.
    pub lease_until: i64,
    /// At most this many messages of one endpoint in flight (counting those already held).
    pub per_endpoint: u32,
    /// At most this many rows in all.
    pub limit: u32,
}

fn count(value: i32) -> u32 {
    u32::try_from(value).unwrap_or(0)
}

fn status_of(value: Option<i32>) -> Option<u16> {
    value.and_then(|s| u16::try_from(s).ok())
}

/// Defines the outbox functions for one backend: `$ids` selects the ids of the JSON array
/// text bound as `$3`, `$skip_locked` is PostgreSQL's row-lock clause (empty on SQLite, whose
/// single writer needs none), `$first_due` joins each endpoint `e` of a claim to its first
/// `$2` due rows `o` (SQLite has no `LATERAL`; PostgreSQL would run `IN (… LIMIT)` per row),
/// and `$outcomes` and `$attempt_rows` read the JSON array of objects bound as `$1` as rows
/// `(m, s, n)` and `(m, a, e, t, st, er, l, n)` (see `record_round`).
macro_rules! outbox_backend {
    (
        $db:ty,
        $ids:literal,
        $skip_locked:literal,
        $first_due:literal,
        $outcomes:literal,
        $attempt_rows:literal
    ) => {
        use sqlx::Row as _;

        use crate::error::StoreError;
        use crate::event::Position;
        use crate::event::QueuedMessage;
        use crate::outbox::{
            count, status_of, AttemptCursor, AttemptRecord, ClaimLimits, DeliveryAttempt,
            MessageState,
        };

        type Pool = sqlx::Pool<$db>;

        fn queued(row: &<$db as sqlx::Database>::Row) -> Result<QueuedMessage, sqlx::Error> {
            Ok(QueuedMessage {
                message_id: row.try_get("message_id")?,
                endpoint_id: row.try_get("endpoint_id")?,
                event_type: row.try_get("event_type")?,
                occurred_at: row.try_get("occurred_at")?,
                position: Position::from_i64(row.try_get("position")?),
                data: row.try_get("data")?,
                attempts: count(row.try_get("attempts")?),
                state: row.try_get("state")?,
            })
        }

        /// The messages queued for a webhook endpoint, in log order.
        #[tracing::instrument(level = "debug", skip_all)]
        pub(crate) async fn outbox_of(
            pool: &Pool,
            endpoint_id: &str,
        ) -> Result<Vec<QueuedMessage>, StoreError> {
            let rows = sqlx::query(
                "SELECT message_id, endpoint_id, event_type, occurred_at, position, data, \
                 attempts, state FROM webhook_outbox WHERE endpoint_id = $1 \
                 ORDER BY position, message_id",
            )
            .bind(endpoint_id)
            .fetch_all(pool)
            .await
            .map_err(StoreError::unavailable)?;
            rows.iter()
                .map(queued)
                .collect::<Result<_, sqlx::Error>>()
                .map_err(StoreError::unavailable)
        }

        /// Claims due messages: each endpoint's oldest first, round-robin across endpoints (one
        /// of each before a second of any), at most `per_endpoint` of one endpoint in flight on
        /// this node (another node's leases, or a dead one's, hold only their own messages).
        ///
        /// Its cost follows the endpoints and what is claimed, not the backlog: the endpoints
        /// with pending messages are found by skipping through `webhook_outbox_endpoint_due`
        /// (one look-up each), each one's first `per_endpoint` due rows are read from it in
        /// order, and this node's leases from `webhook_outbox_leased`. (Ranking every pending
        /// row at every claim took 46 ms at 20,000 pending on SQLite, 34 ms on PostgreSQL.)
        #[tracing::instrument(level = "debug", skip_all)]
        pub(crate) async fn claim_messages(
            pool: &Pool,
            node: &str,
            limits: ClaimLimits,
        ) -> Result<Vec<QueuedMessage>, StoreError> {
            let mut conn = pool.acquire().await.map_err(StoreError::unavailable)?;
            claim_on(&mut conn, node, limits).await
        }

        /// Records finished attempts and claims the next messages in ONE transaction: one
        /// commit (one fsync) per cycle of the worker instead of two. The records' writes come
        /// first, so on SQLite the transaction holds the write lock before it reads.
        #[tracing::instrument(level = "debug", skip_all, fields(attempts = records.len()))]
        pub(crate) async fn record_and_claim(
            pool: &Pool,
            node: &str,
            records: &[AttemptRecord],
            limits: ClaimLimits,
        ) -> Result<Vec<QueuedMessage>, StoreError> {
            let mut tx = pool.begin().await.map_err(StoreError::unavailable)?;
            record_rounds(&mut tx, node, records).await?;
            let claimed = if limits.limit > 0 {
                claim_on(&mut tx, node, limits).await?
            } else {
                Vec::new()
            };
            tx.commit().await.map_err(StoreError::unavailable)?;
            Ok(claimed)
        }

        /// The claim's two statements on `conn` (a connection: each its own transaction; or a
        /// transaction's).
        async fn claim_on(
            conn: &mut <$db as sqlx::Database>::Connection,
            node: &str,
            limits: ClaimLimits,
        ) -> Result<Vec<QueuedMessage>, StoreError> {
            let due: Vec<String> = sqlx::query_scalar(concat!(
                "WITH RECURSIVE endpoints(id) AS ( \
                   SELECT (SELECT endpoint_id FROM webhook_outbox WHERE state = 'pending' \
                     ORDER BY endpoint_id, next_attempt_at, position, message_id LIMIT 1) \
                   UNION ALL \
                   SELECT (SELECT q.endpoint_id FROM webhook_outbox q \
                     WHERE q.state = 'pending' AND q.endpoint_id > endpoints.id \
                     ORDER BY q.endpoint_id, q.next_attempt_at, q.position, q.message_id LIMIT 1) \
                   FROM endpoints WHERE endpoints.id IS NOT NULL), \
                 busy AS ( \
                   SELECT endpoint_id, COUNT(*) AS n FROM webhook_outbox \
                   WHERE state = 'pending' AND claimed_until > 0 AND claimed_until > $1 \
                   AND claimed_by = $4 GROUP BY endpoint_id), \
                 due AS ( \
                   SELECT o.message_id, o.endpoint_id, o.next_attempt_at, ROW_NUMBER() OVER ( \
                     PARTITION BY o.endpoint_id ORDER BY o.next_attempt_at, o.position, o.message_id) AS rn \
                   FROM endpoints e ",
                $first_due,
                ") SELECT due.message_id FROM due LEFT JOIN busy ON busy.endpoint_id = due.endpoint_id \
                 WHERE due.rn + COALESCE(busy.n, 0) <= $2 \
                 ORDER BY due.rn, due.next_attempt_at LIMIT $3",
            ))
            .bind(limits.now)
            .bind(i64::from(limits.per_endpoint))
            .bind(i64::from(limits.limit))
            .bind(node)
            .fetch_all(&mut *conn)
            .await
            .map_err(StoreError::unavailable)?;
            if due.is_empty() {
                return Ok(Vec::new());
            }
            // Ids are `msg_` and hex digits: the JSON array is their quoted list.
            let ids = format!("[\"{}\"]", due.join("\",\""));
            let rows = sqlx::query(concat!(
                "UPDATE webhook_outbox SET claimed_until = $1, claimed_by = $2 \
                 WHERE message_id IN (SELECT message_id FROM webhook_outbox \
                   WHERE message_id IN (",
                $ids,
                ") AND state = 'pending' AND claimed_until <= $4 ",
                $skip_locked,
                ") RETURNING message_id, endpoint_id, event_type, occurred_at, position, data, attempts, state"
            ))
            .bind(limits.lease_until)
            .bind(node)
            .bind(ids)
            .bind(limits.now)
            .fetch_all(&mut *conn)
            .await
            .map_err(StoreError::unavailable)?;
            rows.iter()
                .map(queued)
                .collect::<Result<_, sqlx::Error>>()
                .map_err(StoreError::unavailable)
        }

        /// Records finished attempts in one transaction: each message's state and next time,
        /// its lease released, and the attempt row. A message erased meanwhile is skipped.
        ///
        /// Two statements for all of them (the messages' UPDATE, the attempts' INSERT, each
        /// over a JSON array), not two per attempt: on SQLite the transaction holds the one
        /// write lock the group commit also needs, so its length is what decisions wait for
        /// while the worker delivers. A message attempted twice in one batch (its lease ran out
        /// meanwhile) has its second attempt recorded in a round of its own, after the first.
        #[tracing::instrument(level = "debug", skip_all, fields(attempts = records.len()))]
        pub(crate) async fn record_attempts(
            pool: &Pool,
            node: &str,
            records: &[AttemptRecord],
        ) -> Result<(), StoreError> {
            let mut tx = pool.begin().await.map_err(StoreError::unavailable)?;
            record_rounds(&mut tx, node, records).await?;
            tx.commit().await.map_err(StoreError::unavailable)
        }

        /// [`record_attempts`] in `tx`: a message attempted twice gets a round of its own.
        async fn record_rounds(
            tx: &mut sqlx::Transaction<'_, $db>,
            node: &str,
            records: &[AttemptRecord],
        ) -> Result<(), StoreError> {
            let mut left: Vec<&AttemptRecord> = records.iter().collect();
            while !left.is_empty() {
                let mut once = std::collections::HashSet::new();
                let (round, later): (Vec<&AttemptRecord>, Vec<&AttemptRecord>) = left
                    .into_iter()
                    .partition(|r| once.insert(r.message_id.as_str()));
                record_round(tx, node, &round).await?;
                left = later;
            }
            Ok(())
        }

        /// [`record_attempts`] for records of distinct messages.
        async fn record_round(
            tx: &mut sqlx::Transaction<'_, $db>,
            node: &str,
            round: &[&AttemptRecord],
        ) -> Result<(), StoreError> {
            let outcomes: Vec<serde_json::Value> = round
                .iter()
                .map(|r| {
                    serde_json::json!({
                        "m": r.message_id,
                        "s": r.outcome.state(),
                        "n": r.outcome.next_attempt_at().unwrap_or(0),
                    })
                })
                .collect();
            let counted: Vec<(String, i32)> = sqlx::query_as(concat!(
                "UPDATE webhook_outbox SET attempts = attempts + 1, state = r.s, \
                 next_attempt_at = r.n, claimed_until = 0, claimed_by = NULL \
                 FROM (",
                $outcomes,
                ") AS r WHERE webhook_outbox.message_id = r.m RETURNING message_id, attempts"
            ))
            .bind(serde_json::Value::Array(outcomes).to_string())
            .fetch_all(&mut **tx)
            .await
            .map_err(StoreError::unavailable)?;
            let attempt: std::collections::HashMap<String, i32> = counted.into_iter().collect();
            let rows: Vec<serde_json::Value> = round
                .iter()
                .filter_map(|r| {
                    let a = attempt.get(&r.message_id)?;
                    Some(serde_json::json!({
                        "m": r.message_id,
                        "a": a,
                        "e": r.endpoint_id,
                        "t": r.attempted_at,
                        "st": r.status,
                        "er": r.error,
                        "l": r.latency_ms,
                        "n": r.outcome.next_attempt_at(),
                    }))
                })
                .collect();
            if rows.is_empty() {
                return Ok(());
            }
            sqlx::query(concat!(
                "INSERT INTO webhook_attempts (message_id, attempt, endpoint_id, attempted_at, \
                 status, error, latency_ms, next_attempt_at, node) \
                 SELECT r.m, r.a, r.e, r.t, r.st, r.er, r.l, r.n, $2 FROM (",
                $attempt_rows,
                ") AS r WHERE true ON CONFLICT (message_id, attempt) DO NOTHING"
            ))
            .bind(serde_json::Value::Array(rows).to_string())
            .bind(node)
            .execute(&mut **tx)
            .await
            .map_err(StoreError::unavailable)?;
            Ok(())
        }

        /// Releases the leases `node` holds: its previous life's, at its start (a crash left
        /// them), so its messages are attempted at once instead of when the leases run out.
        #[tracing::instrument(level = "debug", skip_all)]
        pub(crate) async fn release_leases(pool: &Pool, node: &str) -> Result<u64, StoreError> {
            let done = sqlx::query(
                "UPDATE webhook_outbox SET claimed_until = 0, claimed_by = NULL \
                 WHERE claimed_by = $1 AND state = 'pending'",
            )
            .bind(node)
            .execute(pool)
            .await
            .map_err(StoreError::unavailable)?;
            Ok(done.rows_affected())
        }

        /// An endpoint's signing keys as `(public, secret)`, newest first.
        #[tracing::instrument(level = "debug", skip_all)]
        pub(crate) async fn webhook_secrets(
            pool: &Pool,
            endpoint_id: &str,
        ) -> Result<Vec<(String, String)>, StoreError> {
            sqlx::query_as(
                "SELECT public_key, secret FROM webhook_keys WHERE endpoint_id = $1 \
                 ORDER BY position DESC",
            )
            .bind(endpoint_id)
            .fetch_all(pool)
            .await
            .map_err(StoreError::unavailable)
        }

        /// An endpoint's attempts after `cursor` in the order newest first (time, then message
        /// id, then attempt number, all descending): a page ends exactly where the next begins,
        /// however many attempts share a millisecond.
        #[tracing::instrument(level = "debug", skip_all)]
        pub(crate) async fn deliveries(
            pool: &Pool,
            endpoint_id: &str,
            cursor: &AttemptCursor,
            limit: u32,
        ) -> Result<Vec<DeliveryAttempt>, StoreError> {
            let rows = sqlx::query(
                "SELECT a.message_id, o.event_type, a.attempt, a.attempted_at, a.status, \
                 a.error, a.latency_ms, o.next_attempt_at, o.state \
                 FROM webhook_attempts a JOIN webhook_outbox o ON o.message_id = a.message_id \
                 WHERE a.endpoint_id = $1 AND (a.attempted_at, a.message_id, a.attempt) < ($2, $3, $4) \
                 ORDER BY a.attempted_at DESC, a.message_id DESC, a.attempt DESC LIMIT $5",
            )
            .bind(endpoint_id)
            .bind(cursor.attempted_at)
            .bind(&cursor.message_id)
            .bind(i32::try_from(cursor.attempt).unwrap_or(i32::MAX))
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await
            .map_err(StoreError::unavailable)?;
            rows.iter()
                .map(|row| {
                    let state: String = row.try_get("state")?;
                    let next: i64 = row.try_get("next_attempt_at")?;
                    Ok(DeliveryAttempt {
                        message_id: row.try_get("message_id")?,
                        event_type: row.try_get("event_type")?,
                        attempt: count(row.try_get("attempt")?),
                        attempted_at: row.try_get("attempted_at")?,
                        status: status_of(row.try_get("status")?),
                        error: row.try_get("error")?,
                        latency_ms: row.try_get("latency_ms")?,
                        next_attempt_at: (state == "pending").then_some(next),
                        state,
                    })
                })
                .collect::<Result<_, sqlx::Error>>()
                .map_err(StoreError::unavailable)
        }

        /// A queued message's endpoint and state.
        #[tracing::instrument(level = "debug", skip_all)]
        pub(crate) async fn message_state(
            pool: &Pool,
            message_id: &str,
        ) -> Result<Option<MessageState>, StoreError> {
            let row = sqlx::query(
                "SELECT endpoint_id, state, attempts FROM webhook_outbox WHERE message_id = $1",
            )
            .bind(message_id)
            .fetch_optional(pool)
            .await
            .map_err(StoreError::unavailable)?;
            row.map(|row| {
                Ok(MessageState {
                    endpoint_id: row.try_get("endpoint_id")?,
                    state: row.try_get("state")?,
                    attempts: count(row.try_get("attempts")?),
                })
            })
            .transpose()
            .map_err(StoreError::unavailable)
        }

        /// Makes a message due again at `now`, whatever its state: `false` if it is not
        /// queued (never, or erased).
        #[tracing::instrument(level = "debug", skip_all)]
        pub(crate) async fn redeliver(
            pool: &Pool,
            message_id: &str,
            now: i64,
        ) -> Result<bool, StoreError> {
            let done = sqlx::query(
                "UPDATE webhook_outbox SET state = 'pending', next_attempt_at = $2 \
                 WHERE message_id = $1 AND state <> 'cancelled'",
            )
            .bind(message_id)
            .bind(now)
            .execute(pool)
            .await
            .map_err(StoreError::unavailable)?;
            Ok(done.rows_affected() == 1)
        }

        /// When an endpoint's current run of failed attempts began (Unix ms): its first
        /// attempt after its last delivered one; `None` if its last attempt delivered or it
        /// has none.
        #[tracing::instrument(level = "debug", skip_all)]
        pub(crate) async fn failing_since(
            pool: &Pool,
            endpoint_id: &str,
        ) -> Result<Option<i64>, StoreError> {
            sqlx::query_scalar(
                "SELECT MIN(attempted_at) FROM webhook_attempts WHERE endpoint_id = $1 \
                 AND attempted_at > COALESCE((SELECT MAX(attempted_at) FROM webhook_attempts \
                   WHERE endpoint_id = $1 AND status BETWEEN 200 AND 299), -1)",
            )
            .bind(endpoint_id)
            .fetch_one(pool)
            .await
            .map_err(StoreError::unavailable)
        }
    };
}

pub(crate) mod sqlite {
    outbox_backend!(
        sqlx::Sqlite,
        "SELECT value FROM json_each($3)",
        "",
        "JOIN webhook_outbox o ON o.message_id IN ( \
           SELECT p.message_id FROM webhook_outbox p WHERE p.endpoint_id = e.id \
           AND p.state = 'pending' AND p.next_attempt_at <= $1 AND p.claimed_until <= $1 \
           ORDER BY p.next_attempt_at, p.position, p.message_id LIMIT $2)",
        "SELECT value ->> 'm' AS m, value ->> 's' AS s, value ->> 'n' AS n FROM json_each($1)",
        "SELECT value ->> 'm' AS m, value ->> 'a' AS a, value ->> 'e' AS e, \
           value ->> 't' AS t, value ->> 'st' AS st, value ->> 'er' AS er, \
           value ->> 'l' AS l, value ->> 'n' AS n FROM json_each($1)"
    );
}

pub(crate) mod postgres {
    outbox_backend!(
        sqlx::Postgres,
        "SELECT jsonb_array_elements_text($3::jsonb)",
        "FOR UPDATE SKIP LOCKED",
        "CROSS JOIN LATERAL ( \
           SELECT p.message_id, p.endpoint_id, p.next_attempt_at, p.position \
           FROM webhook_outbox p WHERE p.endpoint_id = e.id \
           AND p.state = 'pending' AND p.next_attempt_at <= $1 AND p.claimed_until <= $1 \
           ORDER BY p.next_attempt_at, p.position, p.message_id LIMIT $2) o",
        "SELECT * FROM jsonb_to_recordset($1::jsonb) AS x(m text, s text, n bigint)",
        "SELECT * FROM jsonb_to_recordset($1::jsonb) \
           AS x(m text, a integer, e text, t bigint, st integer, er text, l bigint, n bigint)"
    );
}

impl Store {
    /// The messages queued for a webhook endpoint, in log order (SPEC §13).
    pub async fn outbox_of(&self, endpoint_id: &str) -> Result<Vec<QueuedMessage>, StoreError> {
        on_backend!(self, outbox::outbox_of(endpoint_id))
    }

    /// Claims due webhook messages for this node's worker (SPEC §13; [`outbox`]).
    pub async fn claim_messages(
        &self,
        node: &str,
        limits: ClaimLimits,
    ) -> Result<Vec<QueuedMessage>, StoreError> {
        on_backend!(self, outbox::claim_messages(node, limits))
    }

    /// Records finished delivery attempts and claims the next due messages, in one
    /// transaction (one commit per worker cycle).
    pub async fn record_and_claim(
        &self,
        node: &str,
        records: &[AttemptRecord],
        limits: ClaimLimits,
    ) -> Result<Vec<QueuedMessage>, StoreError> {
        on_backend!(self, outbox::record_and_claim(node, records, limits))
    }

    /// Records finished delivery attempts, in one transaction.
    pub async fn record_attempts(
        &self,
        node: &str,
        records: &[AttemptRecord],
    ) -> Result<(), StoreError> {
        on_backend!(self, outbox::record_attempts(node, records))
    }

    /// Releases the webhook leases `node` holds (its previous life's, at its start).
    pub async fn release_leases(&self, node: &str) -> Result<u64, StoreError> {
        on_backend!(self, outbox::release_leases(node))
    }

    /// A webhook endpoint's signing keys as `(whpk_…, whsk_…)`, newest first.
    pub async fn webhook_secrets(
        &self,
        endpoint_id: &str,
    ) -> Result<Vec<(String, String)>, StoreError> {
        on_backend!(self, outbox::webhook_secrets(endpoint_id))
    }

    /// A webhook endpoint's delivery attempts after `cursor`, newest first.
    pub async fn deliveries(
        &self,
        endpoint_id: &str,
        cursor: &AttemptCursor,
        limit: u32,
    ) -> Result<Vec<DeliveryAttempt>, StoreError> {
        on_backend!(self, outbox::deliveries(endpoint_id, cursor, limit))
    }

    /// A queued webhook message's endpoint and state.
    pub async fn message_state(
        &self,
        message_id: &str,
    ) -> Result<Option<MessageState>, StoreError> {
        on_backend!(self, outbox::message_state(message_id))
    }

    /// Makes a queued webhook message due again now (`false`: no such message).
    pub async fn redeliver(&self, message_id: &str, now: i64) -> Result<bool, StoreError> {
        let due = on_backend!(self, outbox::redeliver(message_id, now))?;
        if due {
            // The same size, announced again: the worker looks at the outbox now.
            self.inner.outbox.send_modify(|_| {});
        }
        Ok(due)
    }

    /// When a webhook endpoint's current run of failed attempts began (Unix ms).
    pub async fn failing_since(&self, endpoint_id: &str) -> Result<Option<i64>, StoreError> {
        on_backend!(self, outbox::failing_since(endpoint_id))
    }
}
