//! Request and answer shapes several resources share: a reason body, an empty body, and the
//! answers of writes (`{"id","position"}`, `{"position"}`, defined beside the writes in
//! `consent_ledger_app::write`).

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

pub use consent_ledger_app::write::{Created, Positioned};

/// `{"id", "position"}` of a creating write, for handlers that render through
/// [`crate::write::write`].
pub(crate) fn render_created(events: &[StoredEvent]) -> Result<serde_json::Value, ApiError> {
    Ok(json!(Created::of(events)?))
}
