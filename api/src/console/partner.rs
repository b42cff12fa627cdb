//! The partner's pages (SPEC §15): ask a shipper for consent and follow its requests, its
//! tracking subscriptions, and its webhook endpoints with their recent delivery attempts. Each
//! page calls the use case of its API route with the session's caller: what
//! `POST /v1/consent-requests`, `GET /v1/subscriptions` or
//! `GET /v1/webhook-endpoints/{id}/deliveries` refuses a caller, the page refuses too, and a
//! partner sees only its own.

use actix_web::{get, post, web, HttpRequest, HttpResponse};
use chrono::NaiveDateTime;
use consent_ledger_app::query::{path_id, ListQuery};
use consent_ledger_app::requests::{self, SubmitRequest, REQUESTERS};
use consent_ledger_app::state::AppState;
use consent_ledger_app::subscriptions;
use consent_ledger_app::webhooks::endpoints::{self, DeliveryPage, MANAGERS};
use consent_ledger_app::AppError;
use consent_ledger_domain::request::RequestStatus;
use consent_ledger_domain::subscription::SubscriptionScope;
use consent_ledger_domain::values::{ConsentRequestId, DataCategory, LegalBasis, Purpose};
use maud::{html, Markup};
use serde::Serialize;
use serde_json::{json, Value};

use super::pages::{
    column_heads, csrf_field, list, ok, or_error_page, post_form, signed_in, Posted,
};
use super::{caller, error_page, field, visitor, Visitor};
use crate::body::parse_json;
use crate::problem::ApiError;

/// How many delivery attempts of each endpoint the webhooks page shows.
const RECENT_ATTEMPTS: u32 = 20;

/// The partner's requests page, where its request forms lead back to.
const REQUESTS: &str = "/console/consent-requests";

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(new_request_page)
        .service(submit)
        .service(requests_page)
        .service(withdraw)
        .service(subscriptions_page)
        .service(webhooks_page);
}

/// A value's `snake_case` name, as the API writes it.
fn text_of(value: &impl Serialize) -> String {
    match serde_json::to_value(value) {
        Ok(Value::String(s)) => s,
        _ => String::new(),
    }
}

/// The form to ask a shipper for consent: the fields of `POST /v1/consent-requests`.
#[get("/console/consent-requests/new")]
async fn new_request_page(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let session = signed_in!(req, state);
    or_error_page!(session, caller(&session).require(REQUESTERS));
    ok(
        "Request consent",
        &session,
        html! {
            p { "Ask a shipper to let you read its parcels' tracking. The shipper answers in its console or through the API; you see the answer under "
                a href="/console/consent-requests" { "your requests" } "." }
            form method="post" action="/console/consent-requests" class="card" {
                (csrf_field(&session))
                label for="shipper_id" { "Shipper id" }
                input id="shipper_id" name="shipper_id" required spellcheck="false" autocomplete="off"
                    aria-describedby="shipper_id-hint";
                p class="hint" id="shipper_id-hint" { "The shipper's id in the ledger (a UUID the shipper or the carrier gives you)." }
                (terms_fieldsets(false))
                label for="justification" { "Why you ask (the shipper reads this)" }
                textarea id="justification" name="justification" rows="3" cols="60" required {}
                button type="submit" { "Send the request" }
            }
        },
    )
}

/// The words of a free-text list field (commas or spaces between them).
fn words(fields: &[(String, String)], name: &str) -> Vec<Value> {
    field(fields, name)
        .unwrap_or_default()
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|w| !w.is_empty())
        .map(|w| Value::String(w.to_owned()))
        .collect()
}

/// A time from the form: a `datetime-local` value (`2026-12-01T09:30`) is read as UTC; any
/// other text goes to the API's parser as written, which names what is wrong with it.
fn form_time(value: &str) -> String {
    ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(value, f).ok())
        .map(|t| t.and_utc().format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| value.to_owned())
}

/// The fields of a consent's terms, as the request form and the shipper's grant form ask
/// them: the scope (a shipper's every shipment, optionally only some carriers and destination
/// countries; with `shipments`, or the shipments listed), purposes, categories, legal basis,
/// DPA reference and end.
pub(crate) fn terms_fieldsets(shipments: bool) -> Markup {
    html! {
        fieldset {
            legend { "Scope: every shipment of this shipper, present and future, optionally only" }
            label for="carriers" { "Of these carriers" }
            input id="carriers" name="carriers" spellcheck="false" aria-describedby="carriers-hint";
            label for="destination_countries" { "To these destination countries" }
            input id="destination_countries" name="destination_countries" spellcheck="false"
                aria-describedby="carriers-hint";
            p class="hint" id="carriers-hint" { "Separated by commas or spaces (DHL, UPS; DE, FR). Empty: all." }
            @if shipments {
                label for="shipment_ids" { "Or only these shipments (ids)" }
                input id="shipment_ids" name="shipment_ids" spellcheck="false" aria-describedby="carriers-hint";
            }
        }
        fieldset {
            legend { "Purposes" }
            @for p in Purpose::ALL {
                @let id = format!("purpose-{p}");
                span { input type="checkbox" id=(id) name="purposes" value=(p.as_str());
                    label for=(id) { (p.as_str().replace('_', " ")) } }
            }
        }
        fieldset {
            legend { "Data categories" }
            @for c in DataCategory::ALL {
                @let id = format!("category-{c}");
                span { input type="checkbox" id=(id) name="data_categories" value=(c.as_str());
                    label for=(id) { (c.as_str().replace('_', " ")) } }
            }
        }
        label for="legal_basis" { "Legal basis (GDPR Art. 6)" }
        select id="legal_basis" name="legal_basis" required {
            @for b in LegalBasis::ALL {
                option value=(b.as_str()) { (b.as_str().replace('_', " ")) }
            }
        }
        label for="dpa_ref" { "DPA reference (optional)" }
        input id="dpa_ref" name="dpa_ref" autocomplete="off";
        label for="valid_until" { "Valid until (optional, UTC)" }
        input id="valid_until" name="valid_until" type="datetime-local";
    }
}

/// The JSON of the terms [`terms_fieldsets`] asks, plus `names`' text fields, as the API's
/// body takes them (its parser then names any field that is wrong).
pub(crate) fn terms_body(fields: &[(String, String)], names: &[&str]) -> Value {
    let all = |name: &str| {
        fields
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| Value::String(v.clone()))
            .collect::<Vec<_>>()
    };
    let text = |name: &str| field(fields, name).map(str::trim).unwrap_or_default();
    let listed = words(fields, "shipment_ids");
    let scope = if listed.is_empty() {
        let mut scope = json!({ "type": "shipper" });
        for name in ["carriers", "destination_countries"] {
            let listed = words(fields, name);
            if !listed.is_empty() {
                scope[name] = Value::Array(listed);
            }
        }
        scope
    } else {
        json!({ "type": "shipments", "shipment_ids": listed })
    };
    let mut body = json!({
        "scope": scope,
        "purposes": all("purposes"),
        "data_categories": all("data_categories"),
        "legal_basis": text("legal_basis"),
    });
    for name in names {
        body[*name] = text(name).into();
    }
    if !text("dpa_ref").is_empty() {
        body["dpa_ref"] = text("dpa_ref").into();
    }
    if !text("valid_until").is_empty() {
        body["valid_until"] = form_time(text("valid_until")).into();
    }
    body
}

/// Sends the request: `requests::submit` with the session's caller, as the API route does.
#[post("/console/consent-requests")]
async fn submit(posted: Posted) -> Result<HttpResponse, ApiError> {
    posted
        .redirect(REQUESTS, |form| async move {
            // The role before the fields, as on the API.
            caller(&form.session).require(REQUESTERS)?;
            let json =
                serde_json::to_vec(&terms_body(&form.fields, &["shipper_id", "justification"]))
                    .map_err(AppError::internal)?;
            let input: SubmitRequest = parse_json(&json).map_err(|e| e.0)?;
            requests::submit(&form.state, caller(&form.session), input, form.context).await?;
            Ok(())
        })
        .await
}

fn request_status(s: RequestStatus) -> String {
    text_of(&s).replace('_', " ")
}

/// The partner's requests, oldest first, with their status now; a pending one may be withdrawn.
#[get("/console/consent-requests")]
async fn requests_page(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let session = signed_in!(req, state);
    or_error_page!(session, caller(&session).require(REQUESTERS));
    let q: ListQuery<RequestStatus, ConsentRequestId> = ListQuery {
        partner: None,
        shipper: None,
        status: None,
        limit: 1000,
        after: None,
    };
    let found = requests::list(&state, caller(&session), &q);
    ok(
        "Your consent requests",
        &session,
        html! {
            p { a href="/console/consent-requests/new" { "Request consent from a shipper" } }
            @if found.items.is_empty() {
                p { "You have not asked for any consent yet." }
            } @else {
                table {
                    caption { "Your requests, oldest first" }
                    (column_heads(&["Request", "Shipper", "Purposes", "Categories", "Legal basis", "Submitted", "Status", "Answer"]))
                    tbody {
                        @for r in &found.items {
                            @let v = &r.request;
                            tr {
                                td { (v.id.to_string()) }
                                td { (v.shipper_id.to_string()) }
                                td { (list(v.purposes.as_slice())) }
                                td { (list(v.data_categories.as_slice())) }
                                td { (v.legal_basis.as_str()) }
                                td { (v.submitted_at.format("%Y-%m-%d %H:%M UTC")) }
                                td class="status" { (request_status(r.status_now)) }
                                td {
                                    @if let Some(c) = v.consent_id {
                                        "consent " a href=(format!("/console/consents/{c}")) { (c.to_string()) }
                                    } @else if let Some(reason) = v.reason.as_ref().and_then(|r| r.known()) {
                                        (reason.as_str())
                                    } @else if r.status_now == RequestStatus::Pending {
                                        "expires " (v.expires_at.format("%Y-%m-%d %H:%M UTC"))
                                        (post_form(&format!("{REQUESTS}/{}/withdraw", v.id), &session, html! {}, "Withdraw", true))
                                    }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}

/// Withdraws a pending request (the partner who asked): `requests::withdraw`.
#[post("/console/consent-requests/{id}/withdraw")]
async fn withdraw(posted: Posted, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    posted
        .redirect(REQUESTS, |form| async move {
            let id: ConsentRequestId = path_id(&id, "id")?;
            requests::withdraw(&form.state, caller(&form.session), id, form.context).await?;
            Ok(())
        })
        .await
}

/// The caller's tracking subscriptions (`GET /v1/subscriptions`'s use case).
#[get("/console/subscriptions")]
async fn subscriptions_page(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let session = signed_in!(req, state);
    let found = or_error_page!(session, subscriptions::list(&state, caller(&session), None));
    ok(
        "Subscriptions",
        &session,
        html! {
            p class="hint" { "Subscriptions are made through the API (POST /v1/subscriptions); tracking updates reach your webhook endpoints." }
            @if found.items.is_empty() {
                p { "No subscription yet." }
            } @else {
                table {
                    caption { "Your tracking subscriptions" }
                    (column_heads(&["Subscription", "Purpose", "Categories", "Scope", "Status", "Created"]))
                    tbody {
                        @for s in &found.items {
                            tr {
                                td { (s.id.to_string()) }
                                td { (s.purpose.as_str()) }
                                td { (list(s.data_categories.as_slice())) }
                                td { (scope_text(s)) }
                                td class="status" { (text_of(&s.status)) }
                                td { (s.created_at.format("%Y-%m-%d %H:%M UTC")) }
                            }
                        }
                    }
                }
            }
        },
    )
}

fn scope_text(s: &consent_ledger_projections::model::SubscriptionView) -> String {
    match &s.scope {
        SubscriptionScope::Consented => "every shipment your consents cover".into(),
        SubscriptionScope::Shipments { shipment_ids } => {
            let ended = s.ended_shipment_ids.len();
            let mut text = format!("{} shipment(s)", shipment_ids.len());
            if ended > 0 {
                text.push_str(&format!(", {ended} ended"));
            }
            text
        }
    }
}

/// The caller's webhook endpoints, each with its recent delivery attempts (the use cases of
/// `GET /v1/webhook-endpoints` and `GET /v1/webhook-endpoints/{id}/deliveries`).
#[get("/console/webhooks")]
async fn webhooks_page(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let session = signed_in!(req, state);
    or_error_page!(session, caller(&session).require(MANAGERS));
    let found = or_error_page!(session, endpoints::list(&state, caller(&session), None));
    let mut shown = Vec::with_capacity(found.items.len());
    for endpoint in found.items {
        let page = DeliveryPage {
            cursor: None,
            limit: Some(RECENT_ATTEMPTS),
        };
        let attempts = endpoints::deliveries(&state, caller(&session), endpoint.id, page).await;
        shown.push((endpoint, or_error_page!(session, attempts)));
    }
    ok(
        "Webhook endpoints",
        &session,
        html! {
            p class="hint" { "Endpoints are registered, disabled and tested through the API (/v1/webhook-endpoints). Messages are signed with the endpoint's key (Standard Webhooks, v1a)." }
            @if shown.is_empty() { p { "No webhook endpoint yet." } }
            @for (e, attempts) in &shown {
                @let heading = format!("endpoint-{}", e.id);
                section aria-labelledby=(heading) {
                    h2 id=(heading) { (e.url.as_str()) }
                    dl {
                        dt { "Endpoint" } dd { (e.id.to_string()) }
                        dt { "Status" } dd class="status" {
                            (text_of(&e.status))
                            @if let Some(r) = &e.disabled_reason { " (" (r.as_str()) ")" }
                        }
                        @if let Some(d) = &e.description { dt { "Description" } dd { (d.as_str()) } }
                        dt { "Message types" } dd { (e.event_types.iter().map(text_of).collect::<Vec<_>>().join(", ")) }
                        dt { "Public key" } dd { code { (e.public_key) } }
                        dt { "Registered" } dd { (e.registered_at.format("%Y-%m-%d %H:%M UTC")) }
                    }
                    @if attempts.items.is_empty() {
                        p { "No delivery attempt yet." }
                    } @else {
                        table {
                            caption { "Recent delivery attempts, newest first" }
                            (column_heads(&["Attempted", "Message", "Type", "Attempt", "Answer", "Latency", "Message state", "Next attempt"]))
                            tbody {
                                @for a in &attempts.items {
                                    tr {
                                        td { (a.attempted_at.format("%Y-%m-%d %H:%M:%S UTC")) }
                                        td { code { (a.message_id) } }
                                        td { (a.event_type) }
                                        td { (a.attempt) }
                                        td {
                                            @if let Some(s) = a.status { "HTTP " (s) }
                                            @if let Some(err) = &a.error { " " (err) }
                                        }
                                        td { (a.latency_ms) " ms" }
                                        td { (a.message_state) }
                                        td { @if let Some(t) = a.next_attempt_at { (t.format("%Y-%m-%d %H:%M:%S UTC")) } }
                                    }
                                }
                            }
                        }
                        @if attempts.next_cursor.is_some() {
                            p class="hint" { "The " (RECENT_ATTEMPTS) " most recent attempts; older ones: GET /v1/webhook-endpoints/" (e.id.to_string()) "/deliveries." }
                        }
                    }
                }
            }
        },
    )
}
