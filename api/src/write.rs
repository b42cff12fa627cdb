//! The shape every write takes: idempotency check, command, durable commit, read model caught
//! up (so the caller reads its own write), answer rendered from the committed events.
//!
//! Rendering from committed events is what makes `Idempotency-Key` exact (SPEC §5.5): a retry
//! reads the events the first request committed and renders the very same answer.

use std::future::Future;

use actix_web::http::StatusCode;
use actix_web::{HttpMessage, HttpRequest, HttpResponse};
use consent_ledger_store::cqrs::CommandMeta;
use consent_ledger_store::{IdempotencyClaim, IdempotencyRecord, StoredEvent};
use sha2::{Digest, Sha256};

use crate::auth::Caller;
use crate::problem::ApiError;
use crate::state::AppState;

pub const IDEMPOTENCY_KEY: &str = "Idempotency-Key";

/// The request id of this call (set by the request-id middleware).
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

pub fn request_id(req: &HttpRequest) -> String {
    req.extensions()
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_default()
}

/// Whether an answer is the first one or a replay of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    First,
    Replay,
}

fn idempotency_claim(
    req: &HttpRequest,
    caller: &Caller,
    body: &[u8],
) -> Result<Option<IdempotencyClaim>, ApiError> {
    let Some(value) = req.headers().get(IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .filter(|k| (1..=255).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or_else(|| {
            ApiError::invalid(IDEMPOTENCY_KEY, "must be 1–255 visible ASCII characters")
        })?;
    Ok(Some(IdempotencyClaim {
        scope: format!("{} {} {}", caller.id, req.method(), req.path()),
        key: key.to_owned(),
        fingerprint: hex::encode(Sha256::digest(body)),
    }))
}

/// Runs one write. `execute` gets the metadata to commit with and returns what it committed;
/// `render` turns committed events into the answer body, for the first answer and a replay.
pub async fn write<E, Fut, R>(
    state: &AppState,
    req: &HttpRequest,
    caller: &Caller,
    body: &[u8],
    status: StatusCode,
    execute: E,
    render: R,
) -> Result<HttpResponse, ApiError>
where
    E: FnOnce(CommandMeta) -> Fut,
    Fut: Future<Output = Result<Vec<StoredEvent>, ApiError>>,
    R: Fn(&[StoredEvent], Answer) -> Result<serde_json::Value, ApiError>,
{
    let claim = idempotency_claim(req, caller, body)?;
    if let Some(claim) = &claim {
        if let Some(record) = state.store.idempotency(&claim.scope, &claim.key).await? {
            return replay(state, claim, record, status, &render).await;
        }
    }
    let mut meta = CommandMeta::new(caller.id.to_string(), request_id(req));
    meta.idempotency = claim.clone();
    match execute(meta).await {
        Ok(events) => {
            // The commit hook applied our events before the store answered; only a write of
            // another process in between leaves the model behind.
            if state.projector.is_behind() {
                state.projector.catch_up().await?;
            }
            Ok(HttpResponse::build(status).json(render(&events, Answer::First)?))
        }
        Err(ApiError::Replay(record)) => match &claim {
            Some(claim) => replay(state, claim, record, status, &render).await,
            None => Err(ApiError::Internal(anyhow::anyhow!(
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

async fn replay<R>(
    state: &AppState,
    claim: &IdempotencyClaim,
    record: IdempotencyRecord,
    status: StatusCode,
    render: &R,
) -> Result<HttpResponse, ApiError>
where
    R: Fn(&[StoredEvent], Answer) -> Result<serde_json::Value, ApiError>,
{
    if record.fingerprint != claim.fingerprint {
        return Err(ApiError::IdempotencyKeyReused);
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
    Ok(HttpResponse::build(status)
        .insert_header(("Idempotent-Replayed", "true"))
        .json(render(&events, Answer::Replay)?))
}
