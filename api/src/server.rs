//! The actix-web application: routes, request ids, problem+json for every error, time limits
//! on receiving a request, and a graceful stop that drains in-flight requests before the
//! store's writer is flushed.
//!
//! Every answer with a status of 400 or more is `application/problem+json`: a use case's
//! error through [`ApiError`], an unknown route (404) or a method a path does not take (405,
//! with `Allow`) from the default service, and anything actix raises inside the app (an
//! extractor's error) through [`problem_for_any_error`]. Only what actix-http's codec refuses
//! before a request exists (a malformed request line or header, such as a `Content-Length`
//! that is not a number: 400; headers over its buffer: 431; headers not received in
//! [`REQUEST_TIMEOUT`]: 408) is answered by actix-http itself, with an empty body, and the
//! connection is closed.

use std::net::TcpListener;
use std::sync::{Arc, LazyLock};

use actix_web::dev::{ResourceDef, Server, Service};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::middleware::ErrorHandlers;
use actix_web::{web, App, HttpMessage, HttpRequest, HttpResponse, HttpServer, ResponseError};
use utoipa::OpenApi;
use uuid::Uuid;

use crate::body::REQUEST_TIMEOUT;
use crate::problem::{http_problem, problem_for_any_error, ApiError};
use crate::write::RequestId;
use crate::{openapi, routes};
use consent_ledger_app::state::AppState;
use consent_ledger_app::AppError;

const REQUEST_ID: &str = "x-request-id";

/// Each path of the API with the methods it takes, read from the OpenAPI description (which is
/// generated from the handlers), so that a known path asked with another method answers 405
/// naming the methods, not the 404 of an unknown route: actix registers one resource per
/// method and falls through to the default service when none takes the request.
static ROUTES: LazyLock<Vec<(ResourceDef, Vec<&'static str>)>> = LazyLock::new(|| {
    let doc = openapi::ApiDoc::openapi();
    let mut routes: Vec<(ResourceDef, Vec<&'static str>)> = doc
        .paths
        .paths
        .iter()
        .map(|(path, item)| {
            let methods = [
                ("GET", item.get.is_some()),
                ("POST", item.post.is_some()),
                ("PUT", item.put.is_some()),
                ("PATCH", item.patch.is_some()),
                ("DELETE", item.delete.is_some()),
            ]
            .into_iter()
            .filter_map(|(method, taken)| taken.then_some(method))
            .collect();
            (ResourceDef::new(path.as_str()), methods)
        })
        .collect();
    routes.push((ResourceDef::new("/openapi.json"), vec!["GET"]));
    routes
});

/// The default service: 405 with `Allow` for a known path asked with a method it does not
/// take, 404 for an unknown path; both problem+json.
async fn no_route(req: HttpRequest) -> HttpResponse {
    let path = req.path();
    let mut allowed: Vec<&'static str> = ROUTES
        .iter()
        .filter(|(route, _)| route.is_match(path))
        .flat_map(|(_, methods)| methods.iter().copied())
        .collect();
    allowed.sort_unstable();
    allowed.dedup();
    if allowed.is_empty() {
        return ApiError(AppError::NotFound("no such route".into())).error_response();
    }
    let allow = allowed.join(", ");
    let mut res = http_problem(
        StatusCode::METHOD_NOT_ALLOWED,
        format!(
            "{} is not taken here; this path takes {allow}",
            req.method()
        ),
    );
    if let Ok(value) = HeaderValue::from_str(&allow) {
        res.headers_mut().insert(header::ALLOW, value);
    }
    res
}

/// Adds the routes and error handling of the API to an actix app.
pub fn configure(state: Arc<AppState>) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        cfg.app_data(web::Data::from(state))
            .app_data(
                web::PathConfig::default()
                    .error_handler(|e, _| ApiError::invalid("path", e.to_string()).into()),
            )
            .app_data(
                web::QueryConfig::default()
                    .error_handler(|e, _| ApiError::invalid("query", e.to_string()).into()),
            )
            .service(openapi::openapi_json)
            .configure(routes::configure)
            .configure(crate::console::configure)
            .default_service(web::to(no_route));
    }
}

/// Starts the HTTP server on `listener`. The returned server stops gracefully on SIGTERM or
/// SIGINT: it stops accepting, lets in-flight requests finish (their appends are committed and
/// answered), then returns.
pub fn run(listener: TcpListener, state: Arc<AppState>) -> std::io::Result<Server> {
    let server = HttpServer::new(move || {
        App::new()
            // Inside the request-id middleware, so that a rewritten answer gets its id too.
            .wrap(ErrorHandlers::new().default_handler(problem_for_any_error))
            .wrap_fn(|req, srv| {
                let id = req
                    .headers()
                    .get(REQUEST_ID)
                    .and_then(|v| v.to_str().ok())
                    .filter(|v| {
                        (1..=128).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_graphic())
                    })
                    .map(str::to_owned)
                    .unwrap_or_else(|| Uuid::now_v7().to_string());
                req.extensions_mut().insert(RequestId(id.clone()));
                let fut = srv.call(req);
                async move {
                    let mut res = fut.await?;
                    if let Ok(value) = HeaderValue::from_str(&id) {
                        res.headers_mut()
                            .insert(HeaderName::from_static(REQUEST_ID), value);
                    }
                    Ok(res)
                }
            })
            .configure(configure(state.clone()))
    })
    .client_request_timeout(REQUEST_TIMEOUT)
    // A streamed body (an export, a DSAR, a CSV) goes out in several writes; with Nagle's
    // algorithm each write after the first waited for the client's delayed ACK, 40 ms on
    // Linux, and every such answer took ~44 ms however small (BENCHMARKS.md).
    .tcp_nodelay(true)
    .shutdown_timeout(30)
    // The caller stops the server (`ServerHandle::stop`): `serve` installs its SIGTERM and
    // SIGINT handlers before it says it is listening, which actix's own, installed only when
    // the server is first polled, could not promise.
    .disable_signals()
    .listen(listener)?
    .run();
    Ok(server)
}
