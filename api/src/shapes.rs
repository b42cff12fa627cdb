//! Request and answer shapes several resources share: a reason body, an empty body, and the
//! answers of writes (`{"id","position"}`, `{"position"}`).

use consent_ledger_domain::values::Reason;
use consent_ledger_store::StoredEvent;
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;

use crate::problem::ApiError;

/// `{"reason"}`: why a consent is revoked, a request denied, a principal suspended.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReasonBody {
    pub reason: Reason,
}

/// A call that takes no body accepts `{}` or nothing, and names any field sent.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoBody {}

/// The answers of writes live with the writes, in `app`; shipments still renders through
/// [`render_created`].
pub use consent_ledger_app::write::{Created, Positioned};

pub(crate) fn last(events: &[StoredEvent]) -> Result<&StoredEvent, ApiError> {
    events
        .last()
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("a write committed no event")))
}

pub(crate) fn render_created(events: &[StoredEvent]) -> Result<serde_json::Value, ApiError> {
    let first = events
        .first()
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("a write committed no event")))?;
    Ok(json!({ "id": first.stream_id, "position": last(events)?.position }))
}

pub(crate) fn render_position(events: &[StoredEvent]) -> Result<serde_json::Value, ApiError> {
    Ok(json!({ "position": last(events)?.position }))
}
