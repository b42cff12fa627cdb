//! The console's pages, by role (SPEC §15). Each page reads and writes through the use cases of
//! `consent_ledger_app` with the session's caller: what the API refuses a caller, the page
//! refuses too (another tenant's consent is 404 here as there).

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use std::future::Future;

use actix_web::dev::Payload;
use actix_web::{get, post, web, FromRequest, HttpRequest, HttpResponse};
use chrono::SecondsFormat;
use consent_ledger_app::auth::Caller;
use consent_ledger_app::gdpr::AccessRecord;
use consent_ledger_app::query::{path_id, ListQuery, QueryParams};
use consent_ledger_app::requests::{self, ApproveRequest};
use consent_ledger_app::sessions::Session;
use consent_ledger_app::state::AppState;
use consent_ledger_app::write::WriteContext;
use consent_ledger_app::{consents, gdpr, AppError};
use consent_ledger_domain::request::RequestStatus;
use consent_ledger_domain::values::{
    ConsentId, ConsentRequestId, DataCategory, NonEmptySet, Purpose, Reason, Role,
};
use consent_ledger_projections::model::ConsentStatus;
use futures_util::future::LocalBoxFuture;
use maud::{html, Markup};
use serde_json::Value;

use super::{
    caller, check_csrf, error_page, form_fields, layout, page, see_other, visitor, Visitor,
};
use crate::problem::ApiError;
use crate::write::request_id;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(home)
        .service(requests_page)
        .service(approve)
        .service(deny)
        .service(consents_page)
        .service(consent_page)
        .service(revoke)
        .service(access_page)
        .service(verify_page);
}

/// The links of a role's navigation.
pub(crate) fn navigation(caller: &Caller) -> Vec<(&'static str, &'static str)> {
    match caller.role {
        Role::Shipper => vec![
            ("/console/requests", "Requests"),
            ("/console/consents", "Consents"),
            ("/console/authorizations", "Authorizations"),
            ("/console/parties", "Who may see"),
        ],
        Role::Partner => vec![
            ("/console/consents", "Consents"),
            ("/console/consent-requests", "Requests"),
            ("/console/authorizations", "Authorizations"),
            ("/console/subscriptions", "Subscriptions"),
            ("/console/webhooks", "Webhooks"),
        ],
        Role::Admin => vec![("/console/principals", "Principals")],
        Role::PrivacyOfficer | Role::Regulator => vec![
            ("/console/access", "Access log"),
            ("/console/audit", "Reports"),
            ("/console/authorizations", "Authorizations"),
            ("/console/verify", "Verify a bundle"),
            ("/console/log", "Log"),
        ],
        _ => vec![],
    }
}

/// The session of a page's visitor, or (returned) the redirect to sign in.
macro_rules! signed_in {
    ($req:expr, $state:expr) => {
        match visitor(&$req, &$state) {
            Visitor::Signed(s) => s,
            Visitor::Anonymous(redirect) => return Ok(redirect),
        }
    };
}
pub(crate) use signed_in;

/// The value of a use case's `Result`, or (returned) its error as a page of `session`'s.
macro_rules! or_error_page {
    ($session:expr, $result:expr) => {
        match $result {
            Ok(value) => value,
            Err(e) => return Ok(error_page(Some(&$session), e)),
        }
    };
}
pub(crate) use or_error_page;

pub(crate) fn ok(
    title: &str,
    session: &Session,
    content: Markup,
) -> Result<HttpResponse, ApiError> {
    Ok(page(StatusCode::OK, layout(title, Some(session), content)))
}

/// A write from a console form: the session's caller, this request's id, no idempotency key
/// (a form is sent once; a second send is a second write the use case refuses if it must).
pub(crate) fn write_context(
    req: &HttpRequest,
    session: &Session,
    body: &[u8],
) -> Result<WriteContext, AppError> {
    let operation = format!("{} {}", req.method(), req.path());
    WriteContext::new(caller(session), request_id(req), &operation, None, body)
}

/// The home page: what this role does here.
#[get("/console/")]
async fn home(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let session = signed_in!(req, state);
    let me = consent_ledger_app::principals::me(&state, caller(&session));
    let name = me.map(|p| p.name.to_string()).unwrap_or_default();
    let role = session.caller.role;
    let what: Markup = match role {
        Role::Shipper => html! {
            p { "Answer partners' requests for your parcels' tracking, and see and revoke the consents you gave." }
            ul { li { a href="/console/requests" { "Pending requests" } } li { a href="/console/consents" { "Your consents" } } }
        },
        Role::Partner => html! {
            p { "The consents shippers gave you, and what they cover." }
            ul { li { a href="/console/consents" { "Your consents" } } }
        },
        Role::PrivacyOfficer | Role::Regulator => html! {
            p { "Search every recorded access decision, see them per day, and verify an export bundle in this page." }
            ul { li { a href="/console/access" { "Access log" } } li { a href="/console/verify" { "Verify a bundle" } } }
        },
        _ => html! { p { "Signed in as " (role.as_str()) "." } },
    };
    ok(
        &format!("Welcome, {name}"),
        &session,
        html! {
            p class="role" { "Role: " strong { (role.as_str()) } }
            (what)
        },
    )
}

/// A table's head: one column heading (`scope="col"`) per name, in order.
pub(crate) fn column_heads(names: &[&str]) -> Markup {
    html! {
        thead { tr {
            @for name in names { th scope="col" { (name) } }
        } }
    }
}

/// The session's CSRF token as a form's hidden field (SPEC §15: every form carries it).
pub(crate) fn csrf_field(session: &Session) -> Markup {
    html! { input type="hidden" name="csrf" value=(session.csrf); }
}

/// A required text input `id`, named `name`, with its `<label for>` (SPEC §15: every control
/// is labelled).
pub(crate) fn labelled_input(id: &str, name: &str, label: &str) -> Markup {
    html! {
        label for=(id) { (label) }
        input id=(id) name=(name) required;
    }
}

/// A form of one write to `action`: the session's CSRF token, `controls`, and a submit
/// button reading `button` (`class="deny"` when `refusing`, for a refusing or ending write).
pub(crate) fn post_form(
    action: &str,
    session: &Session,
    controls: Markup,
    button: &str,
    refusing: bool,
) -> Markup {
    html! {
        form method="post" action=(action) {
            (csrf_field(session))
            (controls)
            button type="submit" class=[refusing.then_some("deny")] { (button) }
        }
    }
}

/// A refusing form that asks why: a required `reason` labelled `label`, its input's id
/// `{key}-reason`, and a `deny` button.
pub(crate) fn reason_form(
    action: &str,
    session: &Session,
    key: &str,
    label: &str,
    button: &str,
) -> Markup {
    let controls = labelled_input(&format!("{key}-reason"), "reason", label);
    post_form(action, session, controls, button, true)
}

pub(crate) fn list(items: &[impl ToString]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A shipper's pending requests, each with an approval form (narrowing allowed) and a denial.
#[get("/console/requests")]
async fn requests_page(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let session = signed_in!(req, state);
    or_error_page!(session, caller(&session).require(&[Role::Shipper]));
    let q: ListQuery<RequestStatus, ConsentRequestId> = ListQuery {
        partner: None,
        shipper: None,
        status: Some(RequestStatus::Pending),
        limit: 100,
        after: None,
    };
    let pending = requests::list(&state, caller(&session), &q);
    let partners = partner_names(&state);
    ok(
        "Pending requests",
        &session,
        html! {
            @if pending.items.is_empty() {
                p { "No request is waiting for your answer." }
            }
            @for r in &pending.items {
                @let id = r.request.id.to_string();
                section class="card" aria-labelledby=(format!("req-{id}")) {
                    h2 id=(format!("req-{id}")) {
                        (partners.get(&r.request.partner_id.to_string()).cloned().unwrap_or_else(|| r.request.partner_id.to_string()))
                        " asks for " (list(r.request.purposes.as_slice()))
                    }
                    p { "Categories asked: " (list(r.request.data_categories.as_slice()))
                        " · legal basis " (r.request.legal_basis.as_str())
                        " · expires " (r.request.expires_at.format("%Y-%m-%d %H:%M UTC")) }
                    @if let Some(j) = r.request.justification.known() {
                        p class="justification" { "“" (j.as_str()) "”" }
                    }
                    form method="post" action=(format!("/console/requests/{id}/approve")) {
                        (csrf_field(&session))
                        fieldset {
                            legend { "Grant these categories (untick to narrow)" }
                            @for c in r.request.data_categories.iter() {
                                @let input = format!("{id}-{c}");
                                input type="checkbox" id=(input) name="data_categories" value=(c.to_string()) checked;
                                label for=(input) { (c.to_string()) }
                            }
                        }
                        button type="submit" { "Approve" }
                    }
                    (reason_form(&format!("/console/requests/{id}/deny"), &session, &id, "Reason for denying", "Deny"))
                }
            }
        },
    )
}

pub(crate) fn partner_names(state: &AppState) -> BTreeMap<String, String> {
    state
        .projector
        .read()
        .principals
        .values()
        .filter(|p| p.role == Role::Partner)
        .map(|p| (p.id.to_string(), p.name.to_string()))
        .collect()
}

/// What a console form's write is given: the state to write to, the visitor's session, the
/// form's fields (CSRF already checked) and the write's context.
pub(crate) struct Form {
    pub(crate) state: web::Data<AppState>,
    pub(crate) session: Session,
    pub(crate) fields: Vec<(String, String)>,
    pub(crate) context: WriteContext,
}

impl Form {
    /// The form's `reason` field as the use cases take it (the API's 422 when it is missing).
    pub(crate) fn reason(&self) -> Result<Reason, AppError> {
        Reason::parse(
            super::field(&self.fields, "reason")
                .unwrap_or_default()
                .to_owned(),
        )
        .map_err(|e| AppError::invalid("reason", e.to_string()))
    }
}

/// A console form's request, as a handler's one argument: the state, the request and its
/// body (the same extractors a handler would name one by one).
pub(crate) struct Posted {
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
}

impl FromRequest for Posted {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let state = web::Data::<AppState>::from_request(req, payload);
        let body = web::Bytes::from_request(req, payload);
        let req = req.clone();
        Box::pin(async move {
            Ok(Posted {
                state: state.await?,
                req,
                body: body.await?,
            })
        })
    }
}

impl Posted {
    /// One shape for every console form: the visitor's session (else the redirect to sign
    /// in), the form's fields behind the session's CSRF token, the write context, then
    /// `write` — no write runs before the CSRF check. `write`'s value is answered by
    /// `answer`, its error as a page.
    async fn run<T, F, Fut>(
        self,
        write: F,
        answer: impl FnOnce(&Session, T) -> Result<HttpResponse, ApiError>,
    ) -> Result<HttpResponse, ApiError>
    where
        F: FnOnce(Form) -> Fut,
        Fut: Future<Output = Result<T, AppError>>,
    {
        let Posted { state, req, body } = self;
        let session = signed_in!(req, state);
        let fields = or_error_page!(
            session,
            form_fields(&body).and_then(|f| check_csrf(&session, &f).map(|()| f))
        );
        let context = or_error_page!(session, write_context(&req, &session, &body));
        let form = Form {
            state,
            session: session.clone(),
            fields,
            context,
        };
        match write(form).await {
            Ok(value) => answer(&session, value),
            Err(e) => Ok(error_page(Some(&session), e)),
        }
    }

    /// "POST a form → use case → redirect": the form's write, answered by a redirect to
    /// `back` or by its error as a page.
    pub(crate) async fn redirect<F, Fut>(
        self,
        back: &str,
        write: F,
    ) -> Result<HttpResponse, ApiError>
    where
        F: FnOnce(Form) -> Fut,
        Fut: Future<Output = Result<(), AppError>>,
    {
        self.run(write, |_, ()| Ok(see_other(back))).await
    }

    /// "POST a form → page answer": the form's write whose answer is a page of its own (a
    /// token shown once), not a redirect; `write` gives the page's title and content.
    pub(crate) async fn answer<F, Fut>(self, write: F) -> Result<HttpResponse, ApiError>
    where
        F: FnOnce(Form) -> Fut,
        Fut: Future<Output = Result<(String, Markup), AppError>>,
    {
        self.run(write, |session, (title, content)| {
            ok(&title, session, content)
        })
        .await
    }
}

#[post("/console/requests/{id}/approve")]
async fn approve(posted: Posted, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let id: ConsentRequestId = path_id(&id, "id")?;
    posted
        .redirect("/console/consents", |form| async move {
            let categories: Vec<DataCategory> = form
                .fields
                .iter()
                .filter(|(k, _)| k == "data_categories")
                .map(|(_, v)| {
                    serde_json::from_value(Value::String(v.clone())).map_err(|_| {
                        AppError::invalid("data_categories", format!("unknown category {v:?}"))
                    })
                })
                .collect::<Result<_, _>>()?;
            let data_categories = NonEmptySet::new(categories)
                .map_err(|_| AppError::invalid("data_categories", "tick at least one category"))?;
            let input = ApproveRequest {
                purposes: None::<NonEmptySet<Purpose>>,
                data_categories: Some(data_categories),
                valid_until: None,
            };
            requests::approve(&form.state, caller(&form.session), id, input, form.context).await?;
            Ok(())
        })
        .await
}

#[post("/console/requests/{id}/deny")]
async fn deny(posted: Posted, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let id: ConsentRequestId = path_id(&id, "id")?;
    posted
        .redirect("/console/requests", |form| async move {
            let reason = form.reason()?;
            requests::deny(&form.state, caller(&form.session), id, reason, form.context).await?;
            Ok(())
        })
        .await
}

fn status_text(s: ConsentStatus) -> &'static str {
    match s {
        ConsentStatus::Active => "active",
        ConsentStatus::Revoked => "revoked",
        ConsentStatus::Expired => "expired",
        ConsentStatus::NotYetValid => "not yet valid",
    }
}

/// The consents the caller may see (a shipper its own, a partner those given to it).
#[get("/console/consents")]
async fn consents_page(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let session = signed_in!(req, state);
    let q: ListQuery<ConsentStatus, ConsentId> = ListQuery {
        partner: None,
        shipper: None,
        status: None,
        limit: 200,
        after: None,
    };
    or_error_page!(
        session,
        caller(&session).require(&[Role::Shipper, Role::Partner])
    );
    let found = consents::list(&state, caller(&session), &q);
    let partners = partner_names(&state);
    ok(
        "Consents",
        &session,
        html! {
            @if session.caller.role == Role::Shipper {
                p { a href="/console/grant" { "Grant a consent" } }
            }
            @if found.items.is_empty() { p { "No consent yet." } }
            @else {
                table {
                    caption { "Consents, oldest first" }
                    (column_heads(&["Consent", "Partner", "Purposes", "Categories", "Status"]))
                    tbody {
                        @for c in &found.items {
                            @let v = &c.consent;
                            tr {
                                td { a href=(format!("/console/consents/{}", v.id)) { (v.id.to_string()) } }
                                td { (partners.get(&v.partner_id.to_string()).cloned().unwrap_or_default()) }
                                td { (list(v.purposes.as_slice())) }
                                td { (list(v.data_categories.as_slice())) }
                                td { (status_text(c.status)) }
                            }
                        }
                    }
                }
            }
        },
    )
}

/// One consent with its history; the shipper may revoke it here.
#[get("/console/consents/{id}")]
async fn consent_page(
    state: web::Data<AppState>,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let session = signed_in!(req, state);
    let id: ConsentId = or_error_page!(session, path_id(&id, "id"));
    let detail = or_error_page!(session, consents::get(&state, caller(&session), id).await);
    let detail = serde_json::to_value(&detail).map_err(AppError::internal)?;
    let may_revoke =
        consents::may_revoke(&state, caller(&session), id).is_ok() && detail["status"] == "active";
    ok(
        &format!("Consent {id}"),
        &session,
        html! {
            dl {
                dt { "Status" } dd { (detail["status"].as_str().unwrap_or_default()) }
                dt { "Partner" } dd { (detail["partner_id"].as_str().unwrap_or_default()) }
                dt { "Purposes" } dd { (detail["purposes"].to_string()) }
                dt { "Categories" } dd { (detail["data_categories"].to_string()) }
                dt { "Granted" } dd { (detail["granted_at"].as_str().unwrap_or_default()) }
            }
            h2 { "History" }
            ol {
                @for e in detail["history"].as_array().into_iter().flatten() {
                    li { (e["event_type"].as_str().unwrap_or_default()) " at position " (e["position"].to_string()) }
                }
            }
            @if may_revoke {
                form method="post" action=(format!("/console/consents/{id}/revoke")) class="card" {
                    (csrf_field(&session))
                    (labelled_input("reason", "reason", "Reason for revoking"))
                    button type="submit" class="deny" { "Revoke" }
                }
            }
        },
    )
}

#[post("/console/consents/{id}/revoke")]
async fn revoke(posted: Posted, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let id: ConsentId = path_id(&id, "id")?;
    let back = format!("/console/consents/{id}");
    posted
        .redirect(&back, |form| async move {
            let reason = form.reason()?;
            consents::revoke(&form.state, caller(&form.session), id, reason, form.context).await?;
            Ok(())
        })
        .await
}

/// The access log (privacy officers, regulators): every §7 filter, a page of decisions, and a
/// plot of the decisions shown per day by partner and outcome.
#[get("/console/access")]
async fn access_page(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let session = signed_in!(req, state);
    or_error_page!(
        session,
        caller(&session).require(&[Role::PrivacyOfficer, Role::Regulator])
    );
    let asked: Vec<(String, String)> =
        serde_urlencoded::from_str(req.query_string()).unwrap_or_default();
    let kept: Vec<(String, String)> = asked
        .into_iter()
        .filter(|(k, v)| {
            !v.is_empty() && (gdpr::filter::FILTER_NAMES.contains(&k.as_str()) || k == "after")
        })
        .collect();
    let mut query = kept.clone();
    query.push(("limit".into(), "500".into()));
    let query = serde_urlencoded::to_string(&query).map_err(AppError::internal)?;
    let page = or_error_page!(
        session,
        match QueryParams::parse(&query, &gdpr::access_params()) {
            Ok(q) => gdpr::access_page(&state, caller(&session), &q).await,
            Err(e) => Err(e),
        }
    );
    let items = page.items;
    let value_of = |name: &str| {
        kept.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let next = page.next_after.map(|after| {
        let mut q = kept.clone();
        q.retain(|(k, _)| k != "after");
        q.push(("after".into(), after));
        format!(
            "/console/access?{}",
            serde_urlencoded::to_string(&q).unwrap_or_default()
        )
    });
    ok(
        "Access log",
        &session,
        html! {
            form method="get" action="/console/access" class="filters" aria-label="Filters" {
                @for name in gdpr::filter::FILTER_NAMES {
                    div {
                        label for=(format!("f-{name}")) { (name.replace('_', " ")) }
                        input id=(format!("f-{name}")) name=(name) value=(value_of(name))
                            placeholder=(if name == "from" || name == "to" { "2026-12-01T00:00:00Z" } else { "" });
                    }
                }
                button type="submit" { "Filter" }
                a href="/console/access" { "Clear" }
            }
            h2 { "Decisions per day, by partner and outcome" }
            (timeline(&items))
            h2 { "Decisions" }
            p { (items.len()) " shown, oldest first" }
            table {
                (column_heads(&["Position", "Decided", "Outcome", "Partner", "Shipment", "Purpose", "Ground"]))
                tbody {
                    @for a in &items {
                        tr class=(a.outcome) {
                            td { (a.position) }
                            td { (when(a)) }
                            td { (a.outcome) @if let Some(r) = &a.reason { " (" (r) ")" } }
                            td { (partner_of(a)) }
                            td {
                                @if let Some(id) = &a.shipment_id {
                                    a href=(format!("/console/access?shipment_id={id}")) title="this parcel's history" { (id) }
                                }
                            }
                            td { (a.purpose) }
                            td { (ground(a)) }
                        }
                    }
                }
            }
            @if let Some(next) = next { p { a href=(next) { "Next page" } } }
        },
    )
}

/// When a decision was made, as the API writes it.
fn when(a: &AccessRecord) -> String {
    a.decided_at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Who asked: the partner's name, or its id.
fn partner_of(a: &AccessRecord) -> &str {
    a.partner_name.as_deref().unwrap_or(&a.partner_id)
}

/// What an allowed read rested on: consents, authorizations, the DPA.
fn ground(a: &AccessRecord) -> String {
    let mut parts = Vec::new();
    if !a.consents.is_empty() {
        parts.push(format!(
            "consent {}",
            list(&a.consents.iter().map(|c| c.consent_id).collect::<Vec<_>>())
        ));
    }
    if !a.authorization_ids.is_empty() {
        parts.push(format!("authorization {}", list(&a.authorization_ids)));
    }
    if let Some(dpa) = &a.dpa_id {
        parts.push(format!("DPA {dpa}"));
    }
    parts.join(" · ")
}

/// An SVG plot: one row per partner, one column per day, a bar up for allowed and down for
/// denied decisions among `items`.
fn timeline(items: &[AccessRecord]) -> Markup {
    let mut days: BTreeMap<String, ()> = BTreeMap::new();
    let mut counts: BTreeMap<String, BTreeMap<String, (u64, u64)>> = BTreeMap::new();
    for a in items {
        let day = a.decided_at.format("%Y-%m-%d").to_string();
        days.insert(day.clone(), ());
        let cell = counts
            .entry(partner_of(a).to_owned())
            .or_default()
            .entry(day)
            .or_default();
        if a.outcome == "allowed" {
            cell.0 += 1;
        } else {
            cell.1 += 1;
        }
    }
    if items.is_empty() {
        return html! { p { "No decision matches." } };
    }
    let days: Vec<String> = days.into_keys().collect();
    let most = counts
        .values()
        .flat_map(|d| d.values())
        .map(|(a, d)| (*a).max(*d))
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let (label_w, col_w, row_h) = (160.0, 36.0_f64, 80.0_f64);
    let width = label_w + col_w * days.len() as f64 + 10.0;
    let height = row_h * counts.len() as f64 + 30.0;
    let half = row_h / 2.0 - 6.0;
    html! {
        figure {
            svg role="img" aria-labelledby="plot-title" width=(width) height=(height) viewBox=(format!("0 0 {width} {height}")) class="timeline" {
                title id="plot-title" { "Access decisions per day by partner: allowed above the line, denied below" }
                @for (i, day) in days.iter().enumerate() {
                    text x=(label_w + col_w * i as f64 + col_w / 2.0) y=(height - 8.0) text-anchor="middle" class="day" { (day.get(5..).unwrap_or(day)) }
                }
                @for (row, (partner, per_day)) in counts.iter().enumerate() {
                    @let mid = row_h * row as f64 + row_h / 2.0;
                    text x="4" y=(mid + 4.0) class="partner" { (partner) }
                    line x1=(label_w) x2=(width) y1=(mid) y2=(mid) class="axis" {}
                    @for (i, day) in days.iter().enumerate() {
                        @let (allowed, denied) = per_day.get(day).copied().unwrap_or_default();
                        @let x = label_w + col_w * i as f64 + 6.0;
                        @let up = half * allowed as f64 / most;
                        @let down = half * denied as f64 / most;
                        @if allowed > 0 {
                            rect x=(x) y=(mid - up) width=(col_w - 12.0) height=(up) class="allowed" {
                                title { (partner) ", " (day) ": " (allowed) " allowed" }
                            }
                        }
                        @if denied > 0 {
                            rect x=(x) y=(mid) width=(col_w - 12.0) height=(down) class="denied" {
                                title { (partner) ", " (day) ": " (denied) " denied" }
                            }
                        }
                    }
                }
            }
            figcaption { "Green above the line: allowed; red below: denied. Of the decisions listed below." }
        }
    }
}

/// Verifies an export bundle in the page (SPEC §15): the file never leaves the browser.
#[get("/console/verify")]
async fn verify_page(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let session = signed_in!(req, state);
    let vkey = state.log_key.vkey().to_string();
    ok(
        "Verify a bundle",
        &session,
        html! {
            p { "Choose an export bundle (NDJSON). It is checked here, in your browser, against the log's verifier key: nothing is sent to the server." }
            form id="verify" class="card" {
                label for="bundle" { "Bundle file" }
                input id="bundle" type="file" accept=".ndjson,.jsonl,.txt,application/x-ndjson";
                label for="vkey" { "Verifier key (from /v1/log/vkey, or the one you trust)" }
                input id="vkey" name="vkey" value=(vkey) spellcheck="false";
                button type="submit" { "Verify" }
            }
            output id="verdict" for="bundle vkey" role="status" aria-live="polite" {}
            script type="module" src="/console/static/verify-page.js" {}
        },
    )
}
