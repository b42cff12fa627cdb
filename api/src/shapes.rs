//! Request and answer shapes several resources share: a reason body, an empty body, and the
//! answers of writes (`{"id","position"}`, `{"position"}`, defined beside the writes in
//! `consent_ledger_app::write`).

use consent_ledger_domain::values::Reason;
use serde::Deserialize;
use utoipa::ToSchema;

/// `{"reason"}`: why a consent is revoked, a request denied, a principal suspended.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReasonBody {
    pub reason: Reason,
}

/// A call that takes no body accepts `{}` or nothing, and names any field sent.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoBody {}

pub use consent_ledger_app::write::{Created, Positioned};
