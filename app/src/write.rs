//! The shape every write takes: idempotency check, command, durable commit, read model caught
//! up (so the caller reads its own write), answer rendered from the committed events.
//!
//! Rendering from committed events is what makes `Idempotency-Key` exact (SPEC §5.5): a retry
//! reads the events the first request committed and renders the very same answer.

use std::future::Future;

use consent_ledger_store::cqrs::CommandMeta;
use consent_ledger_store::{IdempotencyClaim, IdempotencyRecord, StoredEvent};
use serde::Serialize;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::error::AppError;
use crate::state::AppState;

/// The header (and, on the command line, the option) that makes a write retry-safe.
pub const IDEMPOTENCY_KEY: &str = "Idempotency-Key";

/// Whether an answer is the first one or a replay of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    First,
    Replay,
}

/// `{"id", "position"}`: what a creating write answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct Created {
    /// The new object's id (a UUIDv7).
    #[schema(format = Uuid)]
    pub id: String,
    pub position: u64,
}

impl Created {
    /// The stream the write's first event created, at the position of its last event.
    pub fn of(events: &[StoredEvent]) -> Result<Self, AppError> {
        let first = events.first().ok_or_else(no_event)?;
        Ok(Self {
            id: first.stream_id.clone(),
            position: last(events)?.position.get(),
        })
    }
}

/// `{"position"}`: what a state-changing write answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct Positioned {
    pub position: u64,
}

impl Positioned {
    /// The position of the write's last event.
    pub fn of(events: &[StoredEvent]) -> Result<Self, AppError> {
        Ok(Self {
            position: last(events)?.position.get(),
        })
    }
}

/// The last event a write committed; every write commits at least one.
pub fn last(events: &[StoredEvent]) -> Result<&StoredEvent, AppError> {
    events.last().ok_or_else(no_event)
}

fn no_event() -> AppError {
    AppError::internal(anyhow::anyhow!("a write committed no event"))
}

/// Who writes, for which request, and under which idempotency key (if any).
#[derive(Debug, Clone)]
pub struct WriteContext {
    pub actor: String,
    pub request_id: String,
    pub idempotency: Option<IdempotencyClaim>,
}

impl WriteContext {
    /// A write by `caller`. `operation` names what is written (HTTP: method and path) so one
    /// key may be reused for another operation; `body` fingerprints the request, so the same
    /// key with another body is refused ([`AppError::IdempotencyKeyReused`]).
    pub fn new(
        caller: &Caller,
        request_id: String,
        operation: &str,
        key: Option<&str>,
        body: &[u8],
    ) -> Result<Self, AppError> {
        let idempotency = key
            .map(|key| {
                if !(1..=255).contains(&key.len()) || !key.bytes().all(|b| b.is_ascii_graphic()) {
                    return Err(AppError::invalid(
                        IDEMPOTENCY_KEY,
                        "must be 1–255 visible ASCII characters",
                    ));
                }
                Ok(IdempotencyClaim {
                    scope: format!("{} {operation}", caller.id),
                    key: key.to_owned(),
                    fingerprint: hex::encode(Sha256::digest(body)),
                })
            })
            .transpose()?;
        Ok(Self {
            actor: caller.id.to_string(),
            request_id,
            idempotency,
        })
    }
}

/// Runs one write. `execute` gets the metadata to commit with and returns what it committed;
/// `render` turns committed events into the answer, for the first answer and a replay.
#[tracing::instrument(level = "debug", skip_all, fields(request_id = %context.request_id))]
pub async fn record<E, Fut, R, T>(
    state: &AppState,
    context: WriteContext,
    execute: E,
    render: R,
) -> Result<(T, Answer), AppError>
where
    E: FnOnce(CommandMeta) -> Fut,
    Fut: Future<Output = Result<Vec<StoredEvent>, AppError>>,
    R: Fn(&[StoredEvent], Answer) -> Result<T, AppError>,
{
    let claim = context.idempotency;
    if let Some(claim) = &claim {
        if let Some(record) = state.store.idempotency(&claim.scope, &claim.key).await? {
            return replay(state, claim, record, &render).await;
        }
    }
    let mut meta = CommandMeta::new(context.actor, context.request_id);
    meta.idempotency = claim.clone();
    match execute(meta).await {
        Ok(events) => {
            // The commit hook applied our events before the store answered; only a write of
            // another process in between leaves the model behind.
            if state.projector.is_behind() {
                state.projector.catch_up().await?;
            }
            Ok((render(&events, Answer::First)?, Answer::First))
        }
        Err(AppError::Replay(record)) => match &claim {
            Some(claim) => replay(state, claim, record, &render).await,
            None => Err(AppError::internal(anyhow::anyhow!(
                "replay without an idempotency key"
            ))),
        },
        Err(other) => {
            // A refused write may still have committed something before it (the first step
            // of a two-step write); let the read model see it either way.
            if let Err(e) = state.projector.catch_up().await {
                tracing::warn!(error = %e, "catching up after a refused write failed");
            }
            Err(other)
        }
    }
}

async fn replay<R, T>(
    state: &AppState,
    claim: &IdempotencyClaim,
    record: IdempotencyRecord,
    render: &R,
) -> Result<(T, Answer), AppError>
where
    R: Fn(&[StoredEvent], Answer) -> Result<T, AppError>,
{
    if record.fingerprint != claim.fingerprint {
        return Err(AppError::IdempotencyKeyReused);
    }
    let count = record.last_position.get() - record.first_position.get() + 1;
    let events = state
        .store
        .read_range(
            record.first_position,
            u32::try_from(count).unwrap_or(u32::MAX),
        )
        .await?;
    state.projector.catch_up().await?;
    Ok((render(&events, Answer::Replay)?, Answer::Replay))
}
