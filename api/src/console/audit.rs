//! The auditors' pages (SPEC §15): a data subject's access report (Art. 15) and the record of
//! processing (Art. 30) as pages and CSV downloads, export bundles, and the log's signed
//! checkpoint and verifier key. Each calls the use case of its API route with the session's
//! caller: a shipper asking another tenant's parcel is told 404 here as there.

use actix_web::http::header;
use actix_web::http::StatusCode;
use actix_web::{get, web, HttpRequest, HttpResponse};
use consent_ledger_app::gdpr::{dsar_view, ropa_view};
use consent_ledger_app::state::AppState;
use consent_ledger_app::AppError;
use maud::{html, Markup};
use serde_json::Value;

use super::pages::{column_heads, or_error_page, signed_in};
use super::{caller, error_page, layout, page, visitor, Visitor};
use crate::problem::ApiError;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(audit_home)
        .service(dsar)
        .service(ropa)
        .service(export)
        .service(log_page);
}

/// The query of this page without `format`, and with `format=<format>`.
fn with_format(req: &HttpRequest, format: &str) -> String {
    let mut q: Vec<(String, String)> =
        serde_urlencoded::from_str(req.query_string()).unwrap_or_default();
    q.retain(|(k, v)| k != "format" && !v.is_empty());
    q.push(("format".into(), format.into()));
    serde_urlencoded::to_string(&q).unwrap_or_default()
}

fn download(content_type: &str, name: &str, body: String) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, content_type.to_owned()))
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{name}\""),
        ))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(body)
}

/// A labelled text input of a report's query: its id is its name.
fn text_field(id: &str, label: &str, placeholder: &str) -> Markup {
    html! {
        div {
            label for=(id) { (label) }
            input id=(id) name=(id) placeholder=(placeholder);
        }
    }
}

/// A report's card: its `title`, the query form of `/console/audit/{report}` with one text
/// field per `(name, label, placeholder)` and a `button`, then `after` (a hint).
fn report(
    title: &str,
    report: &str,
    fields: &[(&str, &str, &str)],
    button: &str,
    after: Markup,
) -> Markup {
    html! {
        section class="card" {
            h2 { (title) }
            form method="get" action=(format!("/console/audit/{report}")) class="filters" {
                @for (id, label, placeholder) in fields {
                    (text_field(id, label, placeholder))
                }
                button type="submit" { (button) }
            }
            (after)
        }
    }
}

/// What auditors do here: the forms of each report.
#[get("/console/audit")]
async fn audit_home(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let session = signed_in!(req, state);
    Ok(page(
        StatusCode::OK,
        layout(
            "Reports",
            Some(&session),
            html! {
                (report("A data subject's access report (Art. 15)", "dsar", &[
                    ("carrier", "Carrier", "DHL"),
                    ("tracking_number", "Tracking number", ""),
                    ("recipient_ref", "or recipient reference", ""),
                ], "Show", html! {}))
                (report("Record of processing (Art. 30)", "ropa", &[
                    ("from", "From", "2026-01-01T00:00:00Z"),
                    ("to", "To", "2027-01-01T00:00:00Z"),
                ], "Show", html! {}))
                (report("Export bundle (verifiable offline)", "export", &[
                    ("shipment_id", "Shipment id", ""),
                    ("partner_id", "or partner id", ""),
                    ("from", "From", ""),
                    ("to", "To", ""),
                ], "Download", html! {
                    p class="hint" { "Verify it with " code { "consent-ledger verify" } " or on the " a href="/console/verify" { "verify page" } "." }
                }))
                p { a href="/console/log" { "The log's signed checkpoint and verifier key" } }
            },
        ),
    ))
}

/// The DSAR as a page, or with `format=csv` as a download.
#[get("/console/audit/dsar")]
async fn dsar(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let session = signed_in!(req, state);
    let csv = req.query_string().split('&').any(|p| p == "format=csv");
    let query = with_format(&req, if csv { "csv" } else { "json" });
    let plan = or_error_page!(session, dsar_view(&state, caller(&session), &query).await);
    if csv {
        let mut response = crate::routes::gdpr::dsar_stream(state.into_inner(), plan);
        response.headers_mut().insert(
            header::CONTENT_DISPOSITION,
            header::HeaderValue::from_static("attachment; filename=\"dsar.csv\""),
        );
        return Ok(response);
    }
    let mut text = String::new();
    let written = plan
        .write(&state, async |piece: String| {
            text.push_str(&piece);
            Ok(())
        })
        .await;
    if let Err(e) = written {
        return Ok(error_page(Some(&session), e));
    }
    let answer: Value = serde_json::from_str(&text).map_err(AppError::internal)?;
    let csv_link = format!("/console/audit/dsar?{}", with_format(&req, "csv"));
    Ok(page(
        StatusCode::OK,
        layout(
            "Access report (Art. 15)",
            Some(&session),
            html! {
                p { a href=(csv_link) download { "Download as CSV" } }
                h2 { "Shipments" }
                ul {
                    @for s in answer["shipments"].as_array().into_iter().flatten() {
                        li { (s["carrier"].as_str().unwrap_or_default()) " " (s["tracking_number"].as_str().unwrap_or_default())
                             " — " a href=(format!("/console/access?shipment_id={}", s["shipment_id"].as_str().unwrap_or_default())) { "its access history" } }
                    }
                }
                h2 { "Recipients" }
                @for r in answer["recipients"].as_array().into_iter().flatten() {
                    section class="card" {
                        h3 { (r["name"].as_str().unwrap_or_default()) " (" (r["kind"].as_str().unwrap_or_default()) ", " (r["country"].as_str().unwrap_or_default()) ")" }
                        table {
                            (column_heads(&["When", "Purpose", "Legal basis", "Categories", "Chain"]))
                            tbody {
                                @for a in r["accesses"].as_array().into_iter().flatten() {
                                    tr {
                                        td { (a["decided_at"].as_str().unwrap_or_default()) }
                                        td { (a["purpose"].as_str().unwrap_or_default()) }
                                        td { (joined(&a["legal_bases"])) }
                                        td { (joined(&a["data_categories"])) }
                                        td { (chain(&a["chain"])) }
                                    }
                                }
                            }
                        }
                    }
                }
                @if let Some(denied) = answer["denied"].as_array().filter(|d| !d.is_empty()) {
                    h2 { "Refused attempts (no data was given)" }
                    ul { @for d in denied { li { (d["decided_at"].as_str().unwrap_or_default()) " · " (d["name"].as_str().or(d["partner_id"].as_str()).unwrap_or_default()) " · " (d["reason"].as_str().unwrap_or_default()) } } }
                }
            },
        ),
    ))
}

fn joined(list: &Value) -> String {
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

fn chain(list: &Value) -> String {
    list.as_array()
        .into_iter()
        .flatten()
        .map(|l| {
            format!(
                "{} ({})",
                l["name"]
                    .as_str()
                    .or(l["partner_id"].as_str())
                    .unwrap_or_default(),
                l["role"].as_str().unwrap_or_default()
            )
        })
        .collect::<Vec<_>>()
        .join(" → ")
}

/// The record of processing as a page, or with `format=csv` as a download.
#[get("/console/audit/ropa")]
async fn ropa(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let session = signed_in!(req, state);
    let csv = req.query_string().split('&').any(|p| p == "format=csv");
    let query = with_format(&req, if csv { "csv" } else { "json" });
    let view = or_error_page!(session, ropa_view(&state, caller(&session), &query).await);
    if csv {
        return Ok(download(view.content_type, "ropa.csv", view.body));
    }
    let answer: Value = serde_json::from_str(&view.body).map_err(AppError::internal)?;
    let csv_link = format!("/console/audit/ropa?{}", with_format(&req, "csv"));
    Ok(page(
        StatusCode::OK,
        layout(
            "Record of processing (Art. 30)",
            Some(&session),
            html! {
                p { "From " (answer["from"].as_str().unwrap_or_default()) " to " (answer["to"].as_str().unwrap_or_default()) " · " a href=(csv_link) download { "Download as CSV" } }
                table {
                    (column_heads(&["Partner", "Purposes", "Legal bases", "Consents in force", "Reads allowed / denied", "DPAs (role, sub-processors)", "Carrier authorizations"]))
                    tbody {
                        @for p in answer["partners"].as_array().into_iter().flatten() {
                            tr {
                                td { (p["name"].as_str().unwrap_or_default()) " (" (p["kind"].as_str().unwrap_or_default()) ", " (p["country"].as_str().unwrap_or_default()) ")" }
                                td { (joined(&p["purposes"])) }
                                td { (joined(&p["legal_bases"])) }
                                td { (p["consents_in_force"].to_string()) }
                                td { (p["allowed_reads"].to_string()) " / " (p["denied_reads"].to_string()) }
                                td {
                                    @for d in p["dpas"].as_array().into_iter().flatten() {
                                        div { (d["reference"].as_str().unwrap_or_default()) ": " (d["role"].as_str().unwrap_or_default())
                                            @for s in d["sub_processors"].as_array().into_iter().flatten() {
                                                " · " (s["name"].as_str().unwrap_or_default()) " (" (s["country"].as_str().unwrap_or_default()) ")"
                                            }
                                        }
                                    }
                                }
                                td {
                                    @for a in p["authorizations"].as_array().into_iter().flatten() {
                                        div { (a["legal_basis"].as_str().unwrap_or_default()) ", " (joined(&a["purposes"])) " (" (a["status"].as_str().unwrap_or_default()) ")" }
                                    }
                                }
                            }
                        }
                    }
                }
            },
        ),
    ))
}

/// An export bundle, downloaded (the same stream as `GET /v1/audit/export`).
#[get("/console/audit/export")]
async fn export(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let session = signed_in!(req, state);
    let mut q: Vec<(String, String)> =
        serde_urlencoded::from_str(req.query_string()).unwrap_or_default();
    q.retain(|(_, v)| !v.is_empty());
    let query = serde_urlencoded::to_string(&q).unwrap_or_default();
    match crate::routes::log::export_bundle(state.into_inner(), caller(&session), &query).await {
        Ok(mut response) => {
            response.headers_mut().insert(
                header::CONTENT_DISPOSITION,
                header::HeaderValue::from_static("attachment; filename=\"bundle.ndjson\""),
            );
            Ok(response)
        }
        Err(e) => Ok(error_page(Some(&session), e.0)),
    }
}

/// The log's newest signed checkpoint and its verifier key.
#[get("/console/log")]
async fn log_page(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let session = signed_in!(req, state);
    let checkpoint = or_error_page!(
        session,
        consent_ledger_app::checkpoint::latest_checkpoint(&state).await
    );
    Ok(page(
        StatusCode::OK,
        layout(
            "The log",
            Some(&session),
            html! {
                h2 { "Verifier key" }
                pre { (state.log_key.vkey().to_string()) }
                h2 { "Newest signed checkpoint" }
                pre { (checkpoint) }
                p class="hint" { "A C2SP signed note: the log's size and root hash, signed with the key above. Keep it: a later bundle's checkpoint must be consistent with it." }
            },
        ),
    ))
}
