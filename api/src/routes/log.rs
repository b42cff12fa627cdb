//! The verifiable log (SPEC §6, §7 `/v1/log`): entries as their leaf data, and RFC 9162
//! inclusion and consistency proofs from stored subtree hashes, as base64.

use actix_web::{get, post, web, HttpRequest, HttpResponse};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use consent_ledger_audit::leaf::leaf_data;
use consent_ledger_audit::tree::Hash;
use consent_ledger_domain::values::{
    CarrierCode, PartnerId, Role, ShipmentId, ShipperId, TrackingNumber,
};
use consent_ledger_store::Position;
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::Caller;
use consent_ledger_app::checkpoint as log_checkpoint;
use consent_ledger_app::gdpr::filter::AccessFilter;
use consent_ledger_app::query::QueryParams;
use consent_ledger_app::state::AppState;

use crate::annotations::{responses as err, Outcome};
use crate::problem::ApiError;
use consent_ledger_app::export::Exporter;

/// Most entries one call returns.
pub const MAX_ENTRIES: u64 = 1_000;

fn b64(hashes: &[Hash]) -> Vec<String> {
    hashes.iter().map(|h| B64.encode(h)).collect()
}

fn required(q: &QueryParams, name: &str) -> Result<u64, ApiError> {
    q.get::<u64>(name)?
        .ok_or_else(|| ApiError::invalid(name, "required"))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InclusionProof {
    pub position: u64,
    pub tree_size: u64,
    /// MTH of the first `tree_size` events, from the stored tree (compare with a signed
    /// checkpoint of that size).
    pub root_hash: String,
    /// PATH(position, D[tree_size]), RFC 9162 §2.1.3.1, base64.
    pub inclusion_proof: Vec<String>,
}

/// The inclusion proof of the event at `position` in the tree of `tree_size` events.
/// Any authenticated principal may ask: a proof holds only hashes.
#[utoipa::path(get, path = "/v1/log/proof/inclusion", tag = "log", operation_id = "log_inclusion_proof",
    security(("bearer" = [])),
    params(
        ("position" = u64, Query, description = "the event's position; less than tree_size"),
        ("tree_size" = u64, Query, minimum = 1, description = "a tree size, at most the log's")),
    responses((status = 200, body = InclusionProof), (status = 401, response = err::Unauthorized),
        (status = 422, response = err::UnprocessableEntity), (status = 429, response = err::TooManyRequests),
        (status = 503, response = err::ServiceUnavailable)))]
#[get("/v1/log/proof/inclusion")]
pub async fn inclusion(
    state: web::Data<AppState>,
    req: HttpRequest,
    _caller: Caller,
) -> Result<HttpResponse, ApiError> {
    let q = QueryParams::parse(req.query_string(), &["position", "tree_size"])?;
    let (position, tree_size) = (required(&q, "position")?, required(&q, "tree_size")?);
    if tree_size > log_checkpoint::log_size(&state).await? {
        return Err(ApiError::invalid("tree_size", "larger than the log"));
    }
    if position >= tree_size {
        return Err(ApiError::invalid("position", "must be less than tree_size"));
    }
    let proof = state.store.inclusion_proof(position, tree_size).await?;
    let root = state.store.tree_root(tree_size).await?;
    Ok(HttpResponse::Ok().json(InclusionProof {
        position,
        tree_size,
        root_hash: B64.encode(root),
        inclusion_proof: b64(&proof),
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConsistencyProof {
    pub from: u64,
    pub to: u64,
    pub tree_size: u64,
    pub old_root_hash: String,
    pub root_hash: String,
    /// PROOF(from, D[to]), RFC 9162 §2.1.4.1, base64.
    pub consistency_proof: Vec<String>,
}

/// The consistency proof between the trees of `from` and `to` events.
#[utoipa::path(get, path = "/v1/log/proof/consistency", tag = "log", operation_id = "log_consistency_proof",
    security(("bearer" = [])),
    params(
        ("from" = u64, Query, description = "the older tree size; at most to"),
        ("to" = u64, Query, description = "the newer tree size; at most the log's")),
    responses((status = 200, body = ConsistencyProof), (status = 401, response = err::Unauthorized),
        (status = 422, response = err::UnprocessableEntity), (status = 429, response = err::TooManyRequests),
        (status = 503, response = err::ServiceUnavailable)))]
#[get("/v1/log/proof/consistency")]
pub async fn consistency(
    state: web::Data<AppState>,
    req: HttpRequest,
    _caller: Caller,
) -> Result<HttpResponse, ApiError> {
    let q = QueryParams::parse(req.query_string(), &["from", "to"])?;
    let (from, to) = (required(&q, "from")?, required(&q, "to")?);
    if to > log_checkpoint::log_size(&state).await? {
        return Err(ApiError::invalid("to", "larger than the log"));
    }
    if from > to {
        return Err(ApiError::invalid("from", "must not exceed to"));
    }
    let proof = state.store.consistency_proof(from, to).await?;
    Ok(HttpResponse::Ok().json(ConsistencyProof {
        from,
        to,
        tree_size: to,
        old_root_hash: B64.encode(state.store.tree_root(from).await?),
        root_hash: B64.encode(state.store.tree_root(to).await?),
        consistency_proof: b64(&proof),
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Entry {
    pub position: u64,
    /// The event's RFC 8785 canonical JSON: the leaf data (SPEC §6).
    pub leaf: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Entries {
    pub entries: Vec<Entry>,
}

/// The events of positions `start` ≤ p < `end` (at most 1,000) as their leaf data. The whole
/// log names every tenant, so privacy officers and regulators read it.
#[utoipa::path(get, path = "/v1/log/entries", tag = "log", operation_id = "log_entries",
    security(("bearer" = [])),
    params(
        ("start" = u64, Query, description = "the first position"),
        ("end" = u64, Query, description = "the position after the last; start ≤ end ≤ start + 1,000")),
    responses((status = 200, body = Entries), (status = 401, response = err::Unauthorized),
        (status = 403, response = err::Forbidden), (status = 422, response = err::UnprocessableEntity),
        (status = 429, response = err::TooManyRequests), (status = 503, response = err::ServiceUnavailable)))]
#[get("/v1/log/entries")]
pub async fn entries(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    caller.require(&[Role::PrivacyOfficer, Role::Regulator])?;
    let q = QueryParams::parse(req.query_string(), &["start", "end"])?;
    let (start, end) = (required(&q, "start")?, required(&q, "end")?);
    if end < start || end - start > MAX_ENTRIES {
        return Err(ApiError::invalid(
            "end",
            format!("must be between start and start + {MAX_ENTRIES}"),
        ));
    }
    let events = state
        .store
        .read_range(
            Position::new(start),
            u32::try_from(end - start).unwrap_or(0),
        )
        .await?;
    let entries = events
        .iter()
        .map(|e| {
            let leaf = String::from_utf8(leaf_data(&e.leaf())).map_err(ApiError::internal)?;
            Ok(Entry {
                position: e.position.get(),
                leaf,
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    Ok(HttpResponse::Ok().json(Entries { entries }))
}

/// The log's public key in the C2SP vkey format (`<name>+<key hash>+<base64>`), for verifying
/// checkpoints and export bundles offline.
#[utoipa::path(get, path = "/v1/log/vkey", tag = "log", operation_id = "log_vkey",
    responses((status = 200, description = "the C2SP vkey", body = String, content_type = "text/plain")))]
#[get("/v1/log/vkey")]
pub async fn vkey(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body(format!("{}\n", state.log_key.vkey()))
}

fn note_response(note: String) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body(note)
}

/// The newest signed checkpoint (C2SP tlog-checkpoint as a C2SP signed note, Ed25519). The
/// service signs one every N events or T seconds; the first call on a log without one signs it.
#[utoipa::path(get, path = "/v1/log/checkpoint", tag = "log", operation_id = "log_checkpoint",
    security(("bearer" = [])),
    responses((status = 200, description = "the signed note", body = String, content_type = "text/plain"),
        (status = 401, response = err::Unauthorized), (status = 429, response = err::TooManyRequests),
        (status = 503, response = err::ServiceUnavailable)))]
#[get("/v1/log/checkpoint")]
pub async fn checkpoint(
    state: web::Data<AppState>,
    _caller: Caller,
) -> Result<HttpResponse, ApiError> {
    Ok(note_response(
        log_checkpoint::latest_checkpoint(&state).await?,
    ))
}

/// Sign a checkpoint of the log now (admin), and keep it.
#[utoipa::path(post, path = "/v1/log/checkpoint", tag = "log", operation_id = "log_sign_checkpoint",
    security(("bearer" = [])),
    responses((status = 200, description = "the signed note", body = String, content_type = "text/plain"),
        (status = 401, response = err::Unauthorized), (status = 403, response = err::Forbidden),
        (status = 429, response = err::TooManyRequests), (status = 503, response = err::ServiceUnavailable)))]
#[post("/v1/log/checkpoint")]
pub async fn sign_now(
    state: web::Data<AppState>,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    caller.require(&[Role::Admin])?;
    Ok(note_response(
        log_checkpoint::sign_checkpoint(&state).await?.1,
    ))
}

/// The §6 export bundle of access decisions (privacy officer, regulator), narrowed by the access
/// filters of `/v1/audit/access`; a partner exports its own (`partner_id` is itself, another is
/// 404) as proof of what it lawfully received (SPEC §14: each webhook delivery's decision holds
/// the `body_sha256` of the body sent), without the denials that hid a parcel from it: NDJSON, a header with a checkpoint signed for this export, then
/// one line per event with its leaf data and inclusion proof. A filter naming one shipment (and
/// no partner) also exports that shipment's registration. With `since`, the header also carries
/// `"consistency":{"from_size":since,"proof":[…]}`, the RFC 9162 consistency proof from the tree
/// of `since` events, so that `consent-ledger verify --since OLD_CHECKPOINT` can show the log was
/// only appended to since a checkpoint the verifier trusts. `consent-ledger verify` checks the
/// bundle offline with the vkey alone. The body is streamed as it is made.
#[utoipa::path(get, path = "/v1/audit/export", tag = "log", operation_id = "audit_export",
    security(("bearer" = [])),
    params(
        ("shipment_id" = Option<ShipmentId>, Query, description = "decisions about this shipment"),
        ("carrier" = Option<CarrierCode>, Query, description = "with tracking_number: decisions about that shipment, and denials asked by that tracking number"),
        ("tracking_number" = Option<TrackingNumber>, Query, description = "with carrier"),
        ("partner_id" = Option<PartnerId>, Query, description = "decisions of this partner"),
        ("shipper_id" = Option<ShipperId>, Query, description = "decisions about this shipper's shipments"),
        ("from" = Option<DateTime<Utc>>, Query, description = "RFC 3339; decided at or after"),
        ("to" = Option<DateTime<Utc>>, Query, description = "RFC 3339; decided before; not before from"),
        ("outcome" = Option<Outcome>, Query, description = "allowed or denied"),
        ("since" = Option<u64>, Query, description = "a tree size (at most the log's): add the consistency proof from it to the header"),
    ),
    responses((status = 200, description = "the bundle: a header line, then one line per event", body = String,
            content_type = "application/x-ndjson"),
        (status = 401, response = err::Unauthorized), (status = 403, response = err::Forbidden),
        (status = 422, response = err::UnprocessableEntity), (status = 429, response = err::TooManyRequests),
        (status = 503, response = err::ServiceUnavailable)))]
#[get("/v1/audit/export")]
pub async fn export(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    export_bundle(state.into_inner(), &caller, req.query_string()).await
}

/// The export bundle `query` asks for, streamed as it is read (`GET /v1/audit/export` and the
/// console's download).
pub async fn export_bundle(
    state: std::sync::Arc<AppState>,
    caller: &consent_ledger_app::auth::Caller,
    query: &str,
) -> Result<HttpResponse, ApiError> {
    caller.require(&[Role::PrivacyOfficer, Role::Regulator, Role::Partner])?;
    let mut known = consent_ledger_app::gdpr::filter::FILTER_NAMES.to_vec();
    known.push("since");
    let q = QueryParams::parse(query, &known)?;
    let filter = AccessFilter::parse(|name| q.raw(name).map(str::to_owned))
        .map_err(|e| ApiError::invalid(e.field, e.detail))?;
    let since = q.get::<u64>("since")?;
    let exporter = match caller.role {
        Role::Partner => {
            Exporter::start_for_partner(state, caller.id.as_partner(), filter, since).await?
        }
        _ => Exporter::start(state, filter, since).await?,
    };
    let body = futures_util::stream::unfold(Some(exporter), |exporter| async move {
        let mut exporter = exporter?;
        loop {
            match exporter.next_chunk().await {
                // An empty chunk would end a chunked body early.
                Ok(Some(chunk)) if chunk.is_empty() => continue,
                Ok(Some(chunk)) => return Some((Ok(web::Bytes::from(chunk)), Some(exporter))),
                Ok(None) => return None,
                // The status is sent: abort the body, so the client sees it incomplete.
                Err(e) => {
                    tracing::error!(error = ?e, "export failed while streaming");
                    return Some((Err(e), None));
                }
            }
        }
    });
    Ok(HttpResponse::Ok()
        .content_type("application/x-ndjson")
        .streaming(body))
}
