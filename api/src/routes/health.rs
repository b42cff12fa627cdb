//! `GET /healthz`, `GET /readyz` and `GET /metrics` (the admin's).

use actix_web::{get, web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use crate::annotations::responses as err;
use crate::auth::Caller;
use crate::problem::ApiError;
use consent_ledger_app::state::AppState;
use consent_ledger_app::webhooks::delivery::LATENCY_BUCKETS;
use consent_ledger_domain::values::Role;

/// `{"status"}` and nothing more: `ok` from `/healthz`, `ready` from `/readyz`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    pub status: &'static str,
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "operations", operation_id = "healthz",
    responses((status = 200, body = Health, description = "alive: `{\"status\":\"ok\"}`")))]
#[get("/healthz")]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Health { status: "ok" })
}

/// Readiness: the store answers and the read model has applied the whole log. Anyone may ask
/// (load balancers send no token), so the answer is the status alone: the log's size and the
/// model's counts are for the operator, on `/metrics`.
#[utoipa::path(get, path = "/readyz", tag = "operations", operation_id = "readyz", responses(
    (status = 200, body = Health, description = "ready: `{\"status\":\"ready\"}`, nothing more"),
    (status = 503, response = err::ServiceUnavailable)))]
#[get("/readyz")]
pub async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let applied = state.projector.catch_up().await?;
    let head = state.store.next_position().await?;
    if applied < head {
        return Err(ApiError::unavailable(anyhow::anyhow!(
            "read model at {applied}, log at {head}"
        )));
    }
    Ok(HttpResponse::Ok().json(Health { status: "ready" }))
}

/// Prometheus text exposition: the log, the read model, the group commit and decisions. The
/// admin's alone: the counts tell how much business each kind of object does.
#[utoipa::path(get, path = "/metrics", tag = "operations", operation_id = "metrics", security(("bearer" = [])), responses(
    (status = 200, description = "Prometheus text format 0.0.4", body = String, content_type = "text/plain"),
    (status = 401, response = err::Unauthorized),
    (status = 403, response = err::Forbidden),
    (status = 429, response = err::TooManyRequests),
    (status = 503, response = err::ServiceUnavailable)))]
#[get("/metrics")]
pub async fn metrics(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    caller.require(&[Role::Admin])?;
    use std::fmt::Write;
    use std::sync::atomic::Ordering::Relaxed;
    let w = state.store.writer_stats();
    let log_size = state.store.next_position().await?.get();
    let audit_position = state.store.gdpr_position().await?.get();
    let model = state.projector.read().summary();
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, samples: &[(&str, u64)]| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    metric(
        "consent_ledger_read_model_position",
        "gauge",
        "Events applied by this node's read model.",
        &[("", model.log_size)],
    );
    metric(
        "consent_ledger_log_size",
        "gauge",
        "Events in the log: the position the next one gets.",
        &[("", log_size)],
    );
    metric(
        "consent_ledger_audit_projection_position",
        "gauge",
        "Events the GDPR audit projection has applied (SPEC §12). It follows the log in \
         transactions of its own, behind the decisions: consent_ledger_log_size minus this is \
         its lag, which grows while decisions come faster than it writes (BENCHMARKS.md).",
        &[("", audit_position)],
    );
    metric(
        "consent_ledger_consents",
        "gauge",
        "Consents granted, and of them revoked.",
        &[
            ("{state=\"granted\"}", model.consents as u64),
            ("{state=\"revoked\"}", model.revoked_consents as u64),
        ],
    );
    metric(
        "consent_ledger_shipments",
        "gauge",
        "Shipments known to the decider.",
        &[("", model.shipments as u64)],
    );
    metric(
        "consent_ledger_principals",
        "gauge",
        "Principals registered.",
        &[("", model.principals as u64)],
    );
    metric(
        "consent_ledger_consent_requests",
        "gauge",
        "Consent requests submitted.",
        &[("", model.requests as u64)],
    );
    metric(
        "consent_ledger_decisions_total",
        "counter",
        "Access decisions recorded by this node.",
        &[
            (
                "{outcome=\"allowed\"}",
                state.metrics.decisions_allowed.load(Relaxed),
            ),
            (
                "{outcome=\"denied\"}",
                state.metrics.decisions_denied.load(Relaxed),
            ),
        ],
    );
    metric(
        "consent_ledger_erasures_total",
        "counter",
        "PersonalDataErased events recorded by this node (SPEC §12).",
        &[("", state.metrics.erasures.load(Relaxed))],
    );
    metric(
        "consent_ledger_retention_erased_shipments_total",
        "counter",
        "Shipments whose personal data retention (serve --retention-days) erased on this node.",
        &[("", state.metrics.retention_erased.load(Relaxed))],
    );
    let hooks = &state.metrics.webhooks;
    metric(
        "consent_ledger_webhook_messages_queued_total",
        "counter",
        "Webhook messages queued by this node's commits (SPEC §13), each in its event's transaction.",
        &[("", w.outbox.load(Relaxed))],
    );
    metric(
        "consent_ledger_webhook_attempts_total",
        "counter",
        "Webhook delivery attempts by this node: delivered (2xx) or failed.",
        &[
            ("{outcome=\"delivered\"}", hooks.delivered.load(Relaxed)),
            ("{outcome=\"failed\"}", hooks.failed.load(Relaxed)),
        ],
    );
    metric(
        "consent_ledger_webhook_messages_given_up_total",
        "counter",
        "Webhook messages this node gave up (retries spent, 410 Gone, endpoint disabled).",
        &[("", hooks.given_up.load(Relaxed))],
    );
    metric(
        "consent_ledger_webhook_deliveries_cancelled_total",
        "counter",
        "Tracking deliveries this node did not send: checked right before sending, a revocation, suspension or expiry they rested on had committed.",
        &[("", hooks.cancelled.load(Relaxed))],
    );
    metric(
        "consent_ledger_group_commit_batches_total",
        "counter",
        "Write transactions (one fsync each).",
        &[("", w.batches.load(Relaxed))],
    );
    metric(
        "consent_ledger_group_commit_appends_total",
        "counter",
        "Appends committed.",
        &[("", w.appends.load(Relaxed))],
    );
    metric(
        "consent_ledger_group_commit_events_total",
        "counter",
        "Events committed.",
        &[("", w.events.load(Relaxed))],
    );
    metric(
        "consent_ledger_group_commit_refused_total",
        "counter",
        "Appends refused (conflict, claim, key, stale decision).",
        &[("", w.refused.load(Relaxed))],
    );
    metric(
        "consent_ledger_group_commit_failed_batches_total",
        "counter",
        "Batches that failed whole; nothing was written.",
        &[("", w.failed_batches.load(Relaxed))],
    );
    let limits = &state.rate_limits;
    metric(
        "consent_ledger_rate_limited_total",
        "counter",
        "Requests refused 429 by this node: a principal over its rate limit, or a client address \
         over its rate of unknown tokens.",
        &[
            (
                "{limit=\"principal\"}",
                limits.refused_principal.load(Relaxed),
            ),
            (
                "{limit=\"unknown_token\"}",
                limits.refused_unknown_tokens.load(Relaxed),
            ),
        ],
    );
    // After the last `metric`: it borrows `out` until then.
    {
        let name = "consent_ledger_webhook_attempt_duration_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Webhook delivery attempts by latency (request sent to answer read).\n# TYPE {name} histogram"
        );
        let mut cumulative = 0;
        for (i, bound) in LATENCY_BUCKETS.iter().enumerate() {
            cumulative += hooks.latency[i].load(Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        cumulative += hooks.latency[LATENCY_BUCKETS.len()].load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
        let seconds = hooks.latency_micros.load(Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {seconds}\n{name}_count {cumulative}");
    }
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(out))
}
