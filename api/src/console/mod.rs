//! The people's console (SPEC §15): server-rendered pages under `/console/` for shippers,
//! partners, privacy officers, regulators and admins, from the same binary and over the same
//! use cases as the API — a page calls what the route calls, with the session's caller, so §2
//! holds on every page exactly as on the API.
//!
//! - Sign-in exchanges a principal's token for a session cookie (`HttpOnly`,
//!   `SameSite=Strict`, `Secure` unless the browser is on loopback); the sign-in form itself
//!   carries a pre-session CSRF token (double submit), every form after it the session's.
//! - Pages are HTML from compile-time templates ([`maud`]); the only script is the bundle
//!   verifier (`verify.js`), which runs in the page and sends nothing to the server.
//! - Every answer carries a strict Content-Security-Policy (scripts and styles from this origin
//!   only, no framing).

mod admin;
mod audit;
mod pages;
mod partner;
mod shipper;

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{get, post, web, HttpRequest, HttpResponse};
use consent_ledger_app::auth::{self, Caller, Freshness, Token};
use consent_ledger_app::sessions::{random_text, same_secret, Session};
use consent_ledger_app::state::AppState;
use consent_ledger_app::AppError;
use maud::{html, Markup, DOCTYPE};

use crate::problem::ApiError;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "cl_session";
/// The pre-session cookie of the sign-in form (double-submit CSRF token).
const SIGN_IN_COOKIE: &str = "cl_sign_in";
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(root)
        .service(sign_in_page)
        .service(sign_in)
        .service(sign_out)
        .service(stylesheet)
        .service(verifier_script)
        .service(verifier_page_script)
        .configure(pages::configure)
        .configure(partner::configure)
        .configure(admin::configure)
        .configure(audit::configure)
        .configure(shipper::configure);
}

/// `/` leads to the console.
#[get("/")]
async fn root() -> HttpResponse {
    see_other("/console/")
}

fn see_other(to: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, to))
        .finish()
}

/// An HTML answer with the console's security headers.
fn page(status: StatusCode, markup: Markup) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"))
        .insert_header((header::CONTENT_SECURITY_POLICY, CSP))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(markup.into_string())
}

/// A cookie of the console: `HttpOnly`, `SameSite=Strict`, `Secure` unless the browser talks
/// to this node over loopback.
fn cookie<'a>(req: &HttpRequest, name: &'a str, value: String) -> Cookie<'a> {
    let loopback = req.peer_addr().is_some_and(|a| a.ip().is_loopback());
    Cookie::build(name, value)
        .path("/console")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(!loopback)
        .finish()
}

fn removal<'a>(req: &HttpRequest, name: &'a str) -> Cookie<'a> {
    let mut c = cookie(req, name, String::new());
    c.make_removal();
    c
}

/// The page shell: title, the signed-in principal and its navigation, the content.
pub(crate) fn layout(title: &str, session: Option<&Session>, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · consent-ledger" }
                link rel="stylesheet" href="/console/static/console.css";
            }
            body {
                header {
                    a class="brand" href="/console/" { "consent-ledger" }
                    @if let Some(s) = session {
                        nav aria-label="Main" {
                            @for (href, label) in pages::navigation(&s.caller) {
                                a href=(href) { (label) }
                            }
                        }
                        form method="post" action="/console/sign-out" class="sign-out" {
                            input type="hidden" name="csrf" value=(s.csrf);
                            span class="who" { (s.caller.role.as_str()) }
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main id="main" {
                    h1 { (title) }
                    (content)
                }
            }
        }
    }
}

/// An error as a page: the status and what the API's problem would say.
pub(crate) fn error_page(session: Option<&Session>, error: AppError) -> HttpResponse {
    let api = ApiError(error);
    let status = actix_web::ResponseError::status_code(&api);
    let detail = api.0.to_string();
    page(
        status,
        layout(
            status.canonical_reason().unwrap_or("Error"),
            session,
            html! { p class="problem" role="alert" { (detail) } },
        ),
    )
}

/// The session of this request, if it has a live one.
pub(crate) fn session_of(req: &HttpRequest, state: &AppState) -> Option<Session> {
    let value = req.cookie(SESSION_COOKIE)?;
    state
        .sessions
        .session(&state.projector.read(), value.value())
}

/// The form's fields, in order (a checkbox group repeats its name).
pub(crate) fn form_fields(body: &[u8]) -> Result<Vec<(String, String)>, AppError> {
    serde_urlencoded::from_bytes(body).map_err(|e| AppError::invalid("form", e.to_string()))
}

/// The one value of `name` in a form, if any.
pub(crate) fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Refuses a form whose `csrf` field is not the session's token (SPEC §15).
pub(crate) fn check_csrf(session: &Session, fields: &[(String, String)]) -> Result<(), AppError> {
    match field(fields, "csrf") {
        Some(sent) if same_secret(sent, &session.csrf) => Ok(()),
        _ => Err(AppError::Forbidden(
            "the form's CSRF token is missing or not this session's: reload the page and send \
             it again"
                .into(),
        )),
    }
}

/// The sign-in form.
#[get("/console/sign-in")]
async fn sign_in_page(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let csrf = random_text()?;
    let mut response = page(StatusCode::OK, sign_in_form(&csrf, None));
    response
        .add_cookie(&cookie(&req, SIGN_IN_COOKIE, csrf))
        .map_err(|e| ApiError(AppError::internal(anyhow::anyhow!("cookie: {e}"))))?;
    Ok(response)
}

fn sign_in_form(csrf: &str, problem: Option<&str>) -> Markup {
    layout(
        "Sign in",
        None,
        html! {
            @if let Some(p) = problem {
                p class="problem" role="alert" { (p) }
            }
            form method="post" action="/console/sign-in" class="card" {
                input type="hidden" name="csrf" value=(csrf);
                label for="token" { "Your token" }
                input id="token" name="token" type="password" autocomplete="current-password"
                    required autofocus;
                p class="hint" { "The token the ledger's admin issued to you (it starts with cl_). \
                    It is exchanged for a session and not kept in the browser." }
                button type="submit" { "Sign in" }
            }
        },
    )
}

/// Signs in: the token is checked as the API checks it, and exchanged for a session.
#[post("/console/sign-in")]
async fn sign_in(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let fields = form_fields(&body)?;
    let pre = req.cookie(SIGN_IN_COOKIE).map(|c| c.value().to_owned());
    let sent = field(&fields, "csrf");
    let fresh = random_text()?;
    let refuse = |status: StatusCode, why: &str| -> Result<HttpResponse, ApiError> {
        let mut response = page(status, sign_in_form(&fresh, Some(why)));
        response
            .add_cookie(&cookie(&req, SIGN_IN_COOKIE, fresh.clone()))
            .map_err(|e| ApiError(AppError::internal(anyhow::anyhow!("cookie: {e}"))))?;
        Ok(response)
    };
    match (pre.as_deref(), sent) {
        (Some(pre), Some(sent)) if same_secret(pre, sent) => {}
        _ => {
            return refuse(
                StatusCode::FORBIDDEN,
                "This form expired or was not sent from this page: sign in again.",
            )
        }
    }
    let Some(token) = field(&fields, "token").filter(|t| !t.trim().is_empty()) else {
        return refuse(StatusCode::UNPROCESSABLE_ENTITY, "Enter your token.");
    };
    let peer = req.peer_addr().map(|a| a.ip());
    let token = Token::from(token.trim().to_owned());
    let signed = match auth::authenticate(&state, &token, Freshness::Latest, peer)
        .await
        .and_then(|caller| state.sessions.open(caller))
    {
        Ok(signed) => signed,
        Err(AppError::Unauthorized) => {
            return refuse(
                StatusCode::UNAUTHORIZED,
                "This token is not valid (unknown, rotated, or its principal is suspended).",
            )
        }
        Err(other) => return Err(other.into()),
    };
    let mut response = see_other("/console/");
    for c in [
        cookie(&req, SESSION_COOKIE, signed.cookie),
        removal(&req, SIGN_IN_COOKIE),
    ] {
        response
            .add_cookie(&c)
            .map_err(|e| ApiError(AppError::internal(anyhow::anyhow!("cookie: {e}"))))?;
    }
    Ok(response)
}

/// Signs out (a form with the session's CSRF token).
#[post("/console/sign-out")]
async fn sign_out(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let Some(session) = session_of(&req, &state) else {
        return Ok(see_other("/console/sign-in"));
    };
    let fields = form_fields(&body)?;
    if let Err(e) = check_csrf(&session, &fields) {
        return Ok(error_page(Some(&session), e));
    }
    if let Some(c) = req.cookie(SESSION_COOKIE) {
        state.sessions.sign_out(c.value());
    }
    let mut response = see_other("/console/sign-in");
    response
        .add_cookie(&removal(&req, SESSION_COOKIE))
        .map_err(|e| ApiError(AppError::internal(anyhow::anyhow!("cookie: {e}"))))?;
    Ok(response)
}

fn static_file(content_type: &'static str, text: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, content_type))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=300"),
        ))
        .body(text)
}

#[get("/console/static/console.css")]
async fn stylesheet() -> HttpResponse {
    static_file("text/css; charset=utf-8", include_str!("console.css"))
}

/// The in-page bundle verifier (SPEC §15): SHA-256 and Ed25519 through WebCrypto.
#[get("/console/static/verify.js")]
async fn verifier_script() -> HttpResponse {
    static_file("text/javascript; charset=utf-8", include_str!("verify.js"))
}

/// The verify page's own script: reads the chosen file and shows `verify.js`'s verdict.
#[get("/console/static/verify-page.js")]
async fn verifier_page_script() -> HttpResponse {
    static_file(
        "text/javascript; charset=utf-8",
        include_str!("verify-page.js"),
    )
}

/// The caller of a page: its session, or a redirect to sign in.
pub(crate) enum Visitor {
    Signed(Session),
    Anonymous(HttpResponse),
}

pub(crate) fn visitor(req: &HttpRequest, state: &AppState) -> Visitor {
    match session_of(req, state) {
        Some(s) => Visitor::Signed(s),
        None => Visitor::Anonymous(see_other("/console/sign-in")),
    }
}

/// The caller a page acts as.
pub(crate) fn caller(session: &Session) -> &Caller {
    &session.caller
}
