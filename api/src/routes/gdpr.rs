//! The GDPR views over HTTP (SPEC §7): `GET /v1/audit/access`, `GET /v1/audit/dsar` and
//! `GET /v1/audit/ropa`. The views themselves, and who sees what, are
//! [`consent_ledger_app::gdpr`]'s; here they get their query string and their response.

use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::{get, web, HttpRequest, HttpResponse};
use consent_ledger_app::gdpr::{access_view, dsar_view, ropa_view, AccessPage, Dsar, Ropa};
use consent_ledger_app::AppError;

use crate::annotations::{responses as err, AccessFormat, Outcome, ViewFormat};
use crate::auth::Caller;
use crate::problem::ApiError;
use consent_ledger_app::state::AppState;
use consent_ledger_domain::values::{
    CarrierCode, PartnerId, RecipientRef, ShipmentId, ShipperId, TrackingNumber,
};

/// Every recorded access decision the caller may see, oldest first, one page at a time, up to
/// the log's size when asked (or `at_least_as_fresh`): when the audit projection is far behind
/// the log, what it has not applied is read from the log rather than waited for.
#[utoipa::path(get, path = "/v1/audit/access", tag = "audit", operation_id = "audit_access",
    security(("bearer" = [])),
    params(
        ("shipment_id" = Option<ShipmentId>, Query, description = "one shipment"),
        ("carrier" = Option<CarrierCode>, Query, description = "with tracking_number: one parcel"),
        ("tracking_number" = Option<TrackingNumber>, Query, description = "with carrier"),
        ("partner_id" = Option<PartnerId>, Query, description = "the deciding partner"),
        ("shipper_id" = Option<ShipperId>, Query, description = "the shipment's owner"),
        ("from" = Option<DateTime<Utc>>, Query, description = "decided at or after (RFC 3339)"),
        ("to" = Option<DateTime<Utc>>, Query, description = "decided before (RFC 3339); not before from"),
        ("outcome" = Option<Outcome>, Query, description = "allowed or denied"),
        ("format" = Option<AccessFormat>, Query, description = "json (default), csv or ndjson; csv and ndjson give the next page's cursor in a `Link: <…>; rel=\"next\"` header"),
        ("limit" = Option<usize>, Query, minimum = 1, maximum = 1000, description = "rows per page, default 100"),
        ("after" = Option<String>, Query, description = "cursor: the next_after of the previous page"),
        ("at_least_as_fresh" = Option<u64>, Query, description = "a write's position the answer must include")),
    responses(
        (status = 200, description = "one page of access records", content(
            (AccessPage = "application/json"),
            (String = "text/csv"),
            (String = "application/x-ndjson"))),
        (status = 401, response = err::Unauthorized), (status = 403, response = err::Forbidden),
        (status = 404, response = err::NotFound), (status = 422, response = err::UnprocessableEntity),
        (status = 429, response = err::TooManyRequests), (status = 503, response = err::ServiceUnavailable)))]
#[get("/v1/audit/access")]
pub async fn access(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    let view = access_view(&state, &caller, req.query_string()).await?;
    let mut res = HttpResponse::Ok();
    if let Some(next) = &view.next_after {
        let mut link = String::from("/v1/audit/access?");
        let mut pairs: Vec<(String, String)> =
            serde_urlencoded::from_str(req.query_string()).unwrap_or_default();
        pairs.retain(|(k, _)| k != "after");
        pairs.push(("after".into(), next.clone()));
        link.push_str(&serde_urlencoded::to_string(&pairs).unwrap_or_default());
        res.insert_header((header::LINK, format!("<{link}>; rel=\"next\"")));
    }
    Ok(res.content_type(view.content_type).body(view.body))
}

/// Art. 15 for one data subject, named by carrier + tracking number or by recipient_ref:
/// every recipient with each access's date, purpose, legal basis, consents and categories;
/// denied attempts apart (they are not recipients). Up to the log's size when asked (or
/// `at_least_as_fresh`): when the audit projection is far behind the log, the subject's
/// shipments and accesses it has not applied are read from the log rather than waited for.
#[utoipa::path(get, path = "/v1/audit/dsar", tag = "audit", operation_id = "audit_dsar",
    security(("bearer" = [])),
    params(
        ("carrier" = Option<CarrierCode>, Query, description = "with tracking_number: the parcel's data subject"),
        ("tracking_number" = Option<TrackingNumber>, Query, description = "with carrier"),
        ("recipient_ref" = Option<RecipientRef>, Query, description = "instead of carrier + tracking_number"),
        ("format" = Option<ViewFormat>, Query, description = "json (default) or csv"),
        ("at_least_as_fresh" = Option<u64>, Query, description = "a write's position the answer must include")),
    responses(
        (status = 200, description = "the Art. 15 answer", content(
            (Dsar = "application/json"),
            (String = "text/csv"))),
        (status = 401, response = err::Unauthorized), (status = 403, response = err::Forbidden),
        (status = 404, response = err::NotFound), (status = 422, response = err::UnprocessableEntity),
        (status = 429, response = err::TooManyRequests), (status = 503, response = err::ServiceUnavailable)))]
#[get("/v1/audit/dsar")]
pub async fn dsar(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    // Checked before the first byte: a bad query or another tenant's parcel is a problem+json.
    let plan = dsar_view(&state, &caller, req.query_string()).await?;
    Ok(dsar_stream(state.into_inner(), plan))
}

/// A checked DSAR written as it is read (`GET /v1/audit/dsar` and the console's download).
pub fn dsar_stream(
    state: std::sync::Arc<AppState>,
    plan: consent_ledger_app::gdpr::DsarPlan,
) -> HttpResponse {
    let content_type = plan.content_type;
    // Then written as it is read, a page of the GDPR tables at a time, through a bounded
    // channel: a slow reader holds the writer back instead of the answer piling up in memory.
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(4);
    actix_web::rt::spawn(async move {
        let sent = plan
            .write(&state, async |piece: String| {
                tx.send(Ok(Bytes::from(piece)))
                    .await
                    .map_err(|_| AppError::Unavailable(anyhow::anyhow!("the reader went away")))
            })
            .await;
        if let Err(e) = sent {
            tracing::warn!(error = %e, "DSAR cut short");
            let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
        }
    });
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|piece| (piece, rx))
    });
    HttpResponse::Ok()
        .content_type(content_type)
        .streaming(body)
}

/// The Art. 30 record: per partner its kind, country, DPA reference, purposes, categories,
/// legal bases, and its allowed and denied reads in [from, to).
#[utoipa::path(get, path = "/v1/audit/ropa", tag = "audit", operation_id = "audit_ropa",
    security(("bearer" = [])),
    params(
        ("from" = DateTime<Utc>, Query, description = "start of the period (RFC 3339, inclusive)"),
        ("to" = DateTime<Utc>, Query, description = "end of the period (RFC 3339, exclusive)"),
        ("format" = Option<ViewFormat>, Query, description = "json (default) or csv"),
        ("at_least_as_fresh" = Option<u64>, Query, description = "a write's position the answer must include")),
    responses(
        (status = 200, description = "the Art. 30 record", content(
            (Ropa = "application/json"),
            (String = "text/csv"))),
        (status = 401, response = err::Unauthorized), (status = 403, response = err::Forbidden),
        (status = 422, response = err::UnprocessableEntity), (status = 429, response = err::TooManyRequests),
        (status = 503, response = err::ServiceUnavailable)))]
#[get("/v1/audit/ropa")]
pub async fn ropa(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    let view = ropa_view(&state, &caller, req.query_string()).await?;
    Ok(HttpResponse::Ok()
        .content_type(view.content_type)
        .body(view.body))
}
