//! HTTP handlers, one module per resource of SPEC §7. Handlers are glue: authenticate, check
//! the role, parse, run one command through [`crate::write::write`], render.

pub mod consents;
pub mod decisions;
pub mod gdpr;
pub mod health;
pub mod log;
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
        .service(health::metrics)
        .service(log::inclusion)
        .service(log::consistency)
        .service(log::entries)
        .service(log::vkey)
        .service(log::checkpoint)
        .service(log::sign_now)
        .service(log::export)
        .service(gdpr::access)
        .service(gdpr::dsar)
        .service(gdpr::ropa)
        .service(principals::create)
        .service(principals::suspend)
        .service(principals::reactivate)
        .service(principals::me)
        .service(principals::partners)
        .service(decisions::decide_one)
        .service(decisions::decide_batch)
        .service(shipments::authorized_parties)
        .service(shipments::create)
        .service(shipments::get)
        .service(consents::grant)
        .service(consents::list)
        .service(consents::receipt)
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
