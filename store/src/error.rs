use std::sync::Arc;

use crate::event::{IdempotencyRecord, Position};

/// Why the store refused or failed an operation.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another writer committed this stream version first (optimistic concurrency).
    #[error("stream {stream} was changed by a concurrent writer; retry")]
    Conflict { stream: String },
    /// A value that must be unique in the whole log is already claimed.
    /// The claim is kept for the caller to match on; its text may hold a personal value (a
    /// tracking number), so the message shows only its kind.
    #[error("a unique claim of kind `{}` is already taken", claim.split(':').next().unwrap_or_default())]
    ClaimTaken { claim: String },
    /// An earlier request used this `Idempotency-Key`; its answer is to be replayed.
    #[error("idempotency key already used")]
    IdempotencyKeyUsed(IdempotencyRecord),
    /// The database cannot be reached, is full, or failed an I/O step. Nothing was written.
    #[error("event store unavailable: {0}")]
    Unavailable(#[source] Arc<sqlx::Error>),
    /// A restriction committed after the state this append was decided on (see `Guard`).
    #[error("a restriction committed at position {restricted_at} after the decision's state; decide again")]
    Stale { restricted_at: Position },
    /// Another request with this `Idempotency-Key` is being committed right now.
    #[error("a request with this idempotency key is in flight")]
    IdempotencyKeyInFlight,
    /// The writer task is gone (shutdown).
    #[error("event store is shutting down")]
    ShuttingDown,
    /// A stored row could not be read back as an event.
    #[error("stored event at position {position} is unreadable: {detail}")]
    Corrupt { position: i64, detail: String },
    #[error("migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("unsupported database url `{0}`: expected sqlite:// or postgres://")]
    UnsupportedUrl(String),
}

impl StoreError {
    pub(crate) fn unavailable(err: sqlx::Error) -> Self {
        Self::Unavailable(Arc::new(err))
    }
}

/// Which statement of an append failed on a unique key, so that the violation maps to the
/// right variant. This is the one place where a unique violation becomes a typed error, on
/// every backend, through sqlx's `is_unique_violation()`.
#[derive(Debug, Clone, Copy)]
pub(crate) enum UniqueKey<'a> {
    StreamVersion(&'a str),
    Claim(&'a str),
    Idempotency,
}

/// Whether `err` is a unique-key violation, on either backend.
pub(crate) fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_unique_violation())
}

pub(crate) fn classify(err: sqlx::Error, key: UniqueKey<'_>) -> ClassifiedError {
    let unique = is_unique_violation(&err);
    match (unique, key) {
        (true, UniqueKey::StreamVersion(stream)) => {
            ClassifiedError::Refused(StoreError::Conflict {
                stream: stream.to_owned(),
            })
        }
        (true, UniqueKey::Claim(claim)) => ClassifiedError::Refused(StoreError::ClaimTaken {
            claim: claim.to_owned(),
        }),
        (true, UniqueKey::Idempotency) => {
            ClassifiedError::Refused(StoreError::IdempotencyKeyInFlight)
        }
        (false, _) => ClassifiedError::Failed(err),
    }
}

/// A unique violation refuses one append; anything else fails the whole batch.
pub(crate) enum ClassifiedError {
    Refused(StoreError),
    Failed(sqlx::Error),
}
