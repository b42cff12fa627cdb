use actix_web::{get, web, HttpResponse};
use serde_json::json;
use utoipa::OpenApi;

use crate::openapi::ApiDoc;
use crate::problem::ApiError;
use crate::state::AppState;

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "alive")))]
#[get("/healthz")]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// Readiness: the store answers and the read model has applied the whole log.
#[utoipa::path(get, path = "/readyz", tag = "operations", responses(
    (status = 200, description = "ready"),
    (status = 503, description = "store unavailable or read model behind", body = crate::problem::Problem)))]
#[get("/readyz")]
pub async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let applied = state.projector.catch_up().await?;
    let head = state.store.next_position().await?;
    if applied < head {
        return Err(ApiError::Unavailable(anyhow::anyhow!(
            "read model at {applied}, log at {head}"
        )));
    }
    let model = state.projector.read().summary();
    Ok(HttpResponse::Ok().json(json!({ "status": "ready", "log_size": head, "model": model })))
}

/// The OpenAPI 3.1 description of this API, generated from the code.
#[get("/openapi.json")]
pub async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}
