//! HTTP handlers, one module per resource of SPEC §7. Handlers are glue: authenticate, check
//! the role, parse, run one command through [`crate::write::write`], render.

pub mod audit;
pub mod consents;
pub mod decisions;
pub mod health;
pub mod log;
pub mod principals;
pub mod requests;
pub mod shipments;

use std::collections::BTreeMap;
use std::ops::Bound;
use std::str::FromStr;

use actix_web::web;
use consent_ledger_domain::values::{PartnerId, ShipperId};
use consent_ledger_store::StoredEvent;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use crate::body::QueryParams;
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
        .service(audit::access)
        .service(audit::dsar)
        .service(audit::ropa)
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
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("a write committed no event")))
}

pub(crate) fn render_created(events: &[StoredEvent]) -> Result<serde_json::Value, ApiError> {
    let first = events
        .first()
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("a write committed no event")))?;
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

/// The query every list takes: `partner_id`, `shipper_id`, `status`, `limit`, `after`.
pub struct ListQuery<S, K> {
    pub partner: Option<PartnerId>,
    pub shipper: Option<ShipperId>,
    pub status: Option<S>,
    pub limit: usize,
    pub after: Option<K>,
}

impl<S: DeserializeOwned, K: FromStr> ListQuery<S, K>
where
    K::Err: std::fmt::Display,
{
    /// Parses the query; `statuses` lists the accepted status values for the error message.
    pub fn parse(query: &str, statuses: &[&str]) -> Result<Self, ApiError> {
        let q = QueryParams::parse(
            query,
            &["partner_id", "shipper_id", "status", "limit", "after"],
        )?;
        let status: Option<String> = q.get("status")?;
        let status = status
            .map(|s| {
                let known = statuses.contains(&s.as_str());
                serde_json::from_value::<S>(serde_json::Value::String(s.clone()))
                    .ok()
                    .filter(|_| known)
                    .ok_or_else(|| {
                        ApiError::invalid(
                            "status",
                            format!(
                                "unknown value `{s}`; expected one of {}",
                                statuses.join(", ")
                            ),
                        )
                    })
            })
            .transpose()?;
        Ok(Self {
            partner: q.get("partner_id")?,
            shipper: q.get("shipper_id")?,
            status,
            limit: page_size(q.get("limit")?)?,
            after: q.get("after")?,
        })
    }
}

/// One page of `map` after the cursor: `select` filters and renders, `key` gives the cursor.
pub fn page<'a, K, V, T>(
    map: &'a BTreeMap<K, V>,
    after: Option<K>,
    limit: usize,
    select: impl FnMut(&'a V) -> Option<T>,
    key: impl Fn(&T) -> K,
) -> Page<T>
where
    K: Ord + Copy + std::fmt::Display,
{
    let range = match after {
        Some(after) => map.range((Bound::Excluded(after), Bound::Unbounded)),
        None => map.range(..),
    };
    let mut items: Vec<T> = range
        .map(|(_, v)| v)
        .filter_map(select)
        .take(limit + 1)
        .collect();
    let next_after = (items.len() > limit).then(|| {
        items.truncate(limit);
        items.last().map(|t| key(t).to_string()).unwrap_or_default()
    });
    Page { items, next_after }
}

/// Clamps a requested page size.
pub fn page_size(limit: Option<usize>) -> Result<usize, ApiError> {
    match limit {
        None => Ok(DEFAULT_PAGE),
        Some(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::invalid(
            "limit",
            format!("must be between 1 and {MAX_PAGE}"),
        )),
    }
}
