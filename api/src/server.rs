//! The actix-web application: routes, request ids, problem+json for every error, and a
//! graceful stop that drains in-flight requests before the store's writer is flushed.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::{Server, Service};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{web, App, HttpMessage, HttpResponse, HttpServer};
use uuid::Uuid;

use crate::problem::ApiError;
use crate::write::RequestId;
use crate::{openapi, routes};
use consent_ledger_app::state::AppState;
use consent_ledger_app::AppError;

const REQUEST_ID: &str = "x-request-id";

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
            .default_service(web::to(|| async {
                Err::<HttpResponse, _>(ApiError(AppError::NotFound("no such route".into())))
            }));
    }
}

/// Starts the HTTP server on `listener`. The returned server stops gracefully on SIGTERM or
/// SIGINT: it stops accepting, lets in-flight requests finish (their appends are committed and
/// answered), then returns.
pub fn run(listener: TcpListener, state: Arc<AppState>) -> std::io::Result<Server> {
    let server = HttpServer::new(move || {
        App::new()
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
    .shutdown_timeout(30)
    .listen(listener)?
    .run();
    Ok(server)
}
