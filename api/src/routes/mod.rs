//! HTTP handlers, one module per resource of SPEC §7. Handlers are glue: authenticate, check
//! the role, parse, run one command through [`crate::write::write`], render.

pub mod consents;
pub mod health;
pub mod principals;
pub mod requests;
pub mod shipments;

use actix_web::web;
use consent_ledger_store::StoredEvent;
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use crate::problem::ApiError;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(health::healthz)
        .service(health::readyz)
        .service(health::openapi_json)
        .service(principals::create)
        .service(principals::suspend)
        .service(principals::reactivate)
        .service(principals::me)
        .service(principals::partners)
        .service(shipments::create)
        .service(shipments::get)
        .service(consents::grant)
        .service(consents::list)
        .service(consents::get)
        .service(consents::revoke)
        .service(requests::submit)
        .service(requests::list)
        .service(requests::get)
        .service(requests::approve)
        .service(requests::deny)
        .service(requests::withdraw);
}

/// `{"id", "position"}`: what a creating write answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct Created {
    pub id: String,
    pub position: u64,
}

/// `{"position"}`: what a state-changing write answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct Positioned {
    pub position: u64,
}

fn last(events: &[StoredEvent]) -> Result<&StoredEvent, ApiError> {
    events
        .last()
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("a write committed no event")))
}

pub(crate) fn render_created(events: &[StoredEvent]) -> Result<serde_json::Value, ApiError> {
    let first = events.first().ok_or_else(|| ApiError::Internal(anyhow::anyhow!("a write committed no event")))?;
    Ok(json!({ "id": first.stream_id, "position": last(events)?.position }))
}

pub(crate) fn render_position(events: &[StoredEvent]) -> Result<serde_json::Value, ApiError> {
    Ok(json!({ "position": last(events)?.position }))
}

/// One page of a list, with the cursor for the next page.
#[derive(Debug, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `after` to get the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_after: Option<String>,
}

pub const DEFAULT_PAGE: usize = 100;
pub const MAX_PAGE: usize = 1000;

/// Clamps a requested page size.
pub fn page_size(limit: Option<usize>) -> Result<usize, ApiError> {
    match limit {
        None => Ok(DEFAULT_PAGE),
        Some(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::invalid("limit", format!("must be between 1 and {MAX_PAGE}"))),
    }
}
