//! Rate limits (SECURITY.md "Rate limits"; `serve --rate-limit N`): each principal may make N
//! requests a second in bursts of N, a decision batch counting as one; each client address may
//! present N unknown tokens a second; over either, 429 `too-many-requests` with `Retry-After`
//! and nothing recorded; off by default. The limiters run on a clock the tests move, so no test
//! waits and none depends on how fast the machine is.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use actix_web::http::StatusCode;
use consent_ledger_app::rate_limit::RateClock;
use consent_ledger_app::state::ServiceConfig;
use serde_json::{json, Value};

use crate::helpers::{expect, problem, spawn_app, spawn_app_with, Reply, TestApp};

const ME: &str = "/v1/me";
const DECIDE: &str = "/v1/decisions";
const BATCH: &str = "/v1/decisions/batch";
/// The limit the tests run with: 5 requests a second, in bursts of 5.
const LIMIT: u32 = 5;
/// Another client, as the server sees it (the tests' own address is 127.0.0.1).
const OTHER_CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

/// An app limited to [`LIMIT`] a second on a clock the test moves, with it.
async fn limited_app() -> (TestApp, RateClock) {
    let clock = RateClock::manual();
    let app = spawn_app_with(ServiceConfig {
        rate_limit: std::num::NonZeroU32::new(LIMIT),
        rate_clock: clock.clone(),
        ..ServiceConfig::default()
    })
    .await;
    (app, clock)
}

/// A decision about a shipment nobody registered: a recorded deny, one event.
fn question() -> Value {
    json!({ "shipment_id": uuid::Uuid::now_v7(), "purpose": "insurance_claim",
        "data_categories": ["status_events"] })
}

/// Asserts the 429 of a rate limit: problem+json, its type, `Retry-After` of `seconds`.
fn assert_limited(r: &Reply, seconds: &str) {
    problem(r, StatusCode::TOO_MANY_REQUESTS, "too-many-requests");
    assert_eq!(
        r.headers
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("none"),
        seconds,
        "{}",
        r.body
    );
    assert!(
        r.headers.get("www-authenticate").is_none(),
        "a limited token is not refused as unknown"
    );
}

#[actix_web::test]
async fn a_principal_over_its_limit_gets_429_with_retry_after_and_nothing_is_recorded() {
    let (app, clock) = limited_app().await;
    let (_, partner) = app.partner("InsureCo").await;
    let (_, shipper) = app.principal("shipper", "Shop GmbH").await;
    // Setting up took from the admin's bucket and from this address's (each token's first
    // use is read from the store); a second refills them all.
    clock.advance(Duration::from_secs(1));

    // A burst of LIMIT decisions passes, each recorded.
    let size = app.log_size().await;
    for i in 0..LIMIT {
        let r = app.post(DECIDE, &partner, question()).await;
        assert_eq!(r.status, StatusCode::OK, "decision {i}: {}", r.body);
    }
    assert_eq!(app.log_size().await, size + u64::from(LIMIT));

    // The next is refused, records nothing, and says to wait the 200 ms to the next token,
    // rounded up to a whole second.
    let size = app.log_size().await;
    let refused = app.post(DECIDE, &partner, question()).await;
    assert_limited(&refused, "1");
    assert!(
        refused.body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("rate limit")),
        "{}",
        refused.body
    );
    // Reads are limited alike, and a refused request does not count, so the bucket stays
    // empty only until the clock moves.
    assert_limited(&app.get(ME, &partner).await, "1");
    let batch = app
        .post(
            BATCH,
            &partner,
            json!({ "items": [question(), question()] }),
        )
        .await;
    assert_limited(&batch, "1");
    assert_eq!(
        app.log_size().await,
        size,
        "a refused request recorded something"
    );

    // Another principal, and the same principal from another address, are unaffected: the
    // bucket is the principal's.
    expect(&app.get(ME, &shipper).await, StatusCode::OK);
    expect(&app.get(ME, &app.admin).await, StatusCode::OK);
    assert_limited(&app.get_from(OTHER_CLIENT, ME, &partner).await, "1");

    // One token comes back every 1/LIMIT s: 199 ms is not enough, 200 ms is, for one request.
    clock.advance(Duration::from_millis(199));
    assert_limited(&app.get(ME, &partner).await, "1");
    clock.advance(Duration::from_millis(1));
    expect(&app.get(ME, &partner).await, StatusCode::OK);
    assert_limited(&app.get(ME, &partner).await, "1");

    // A second later the whole burst is back, and no more.
    clock.advance(Duration::from_secs(1));
    let size = app.log_size().await;
    for i in 0..LIMIT {
        let r = app.post(DECIDE, &partner, question()).await;
        assert_eq!(
            r.status,
            StatusCode::OK,
            "decision {i} after a second: {}",
            r.body
        );
    }
    assert_limited(&app.post(DECIDE, &partner, question()).await, "1");
    assert_eq!(app.log_size().await, size + u64::from(LIMIT));

    // The operator sees each refusal.
    let metrics = app.get("/metrics", &app.admin).await;
    assert_eq!(metrics.status, StatusCode::OK, "{}", metrics.body);
    let text = metrics.body.as_str().unwrap_or_default();
    for line in [
        "consent_ledger_rate_limited_total{limit=\"principal\"} 7",
        "consent_ledger_rate_limited_total{limit=\"unknown_token\"} 0",
    ] {
        assert!(text.contains(line), "{line} in {text}");
    }
}

#[actix_web::test]
async fn a_decision_batch_counts_as_one_request() {
    let (app, clock) = limited_app().await;
    let (_, partner) = app.partner("InsureCo").await;
    clock.advance(Duration::from_secs(1));

    let size = app.log_size().await;
    let items: Vec<Value> = (0..2 * LIMIT).map(|_| question()).collect();
    for i in 0..LIMIT {
        let r = app
            .post(BATCH, &partner, json!({ "items": items.clone() }))
            .await;
        let body = expect(&r, StatusCode::OK);
        assert_eq!(
            body["results"].as_array().map(Vec::len),
            Some(items.len()),
            "batch {i}: {body}"
        );
    }
    assert_eq!(
        app.log_size().await,
        size + u64::from(LIMIT) * items.len() as u64
    );
    assert_limited(
        &app.post(BATCH, &partner, json!({ "items": items })).await,
        "1",
    );
}

/// A request is taken from its principal's bucket only once its token is authenticated, so a
/// refused token (here a suspended principal's) cannot spend the principal's requests.
#[actix_web::test]
async fn a_refused_token_does_not_spend_its_principals_requests() {
    let (app, clock) = limited_app().await;
    let (partner_id, partner) = app.partner("InsureCo").await;
    expect(&app.get(ME, &partner).await, StatusCode::OK);
    expect(
        &app.suspend(&partner_id, "token leaked").await,
        StatusCode::OK,
    );
    clock.advance(Duration::from_secs(1));

    for _ in 0..2 * LIMIT {
        let r = app.get(ME, &partner).await;
        problem(&r, StatusCode::UNAUTHORIZED, "unauthorized");
    }
    let reactivated = app
        .post(
            &format!("/v1/principals/{partner_id}/reactivate"),
            &app.admin,
            json!({}),
        )
        .await;
    expect(&reactivated, StatusCode::OK);
    for i in 0..LIMIT {
        let r = app.get(ME, &partner).await;
        assert_eq!(r.status, StatusCode::OK, "request {i}: {}", r.body);
    }
    assert_limited(&app.get(ME, &partner).await, "1");
}

#[actix_web::test]
async fn unknown_tokens_from_one_address_get_401_until_its_bucket_is_empty_then_429() {
    let (app, clock) = limited_app().await;
    let (_, shipper) = app.principal("shipper", "Shop GmbH").await;
    expect(&app.get(ME, &shipper).await, StatusCode::OK);
    clock.advance(Duration::from_secs(1));

    // Each unknown token costs a read of the credentials table: LIMIT of them a second.
    for i in 0..LIMIT {
        let r = app.get(ME, &format!("cl_unknown{i}")).await;
        problem(&r, StatusCode::UNAUTHORIZED, "unauthorized");
    }
    let refused = app.get(ME, "cl_unknown-one-too-many").await;
    assert_limited(&refused, "1");
    assert!(
        !refused.body.to_string().contains("one-too-many"),
        "the token is never echoed: {}",
        refused.body
    );
    // A request with no token costs no read and is not counted; a token this node knows is
    // not read either, and its principal's own bucket is full.
    problem(
        &app.get_anonymous(ME).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    expect(&app.get(ME, &shipper).await, StatusCode::OK);
    // Another address has a bucket of its own.
    problem(
        &app.get_from(OTHER_CLIENT, ME, "cl_unknown-from-elsewhere")
            .await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );

    // With time the address may try again.
    clock.advance(Duration::from_secs(1));
    problem(
        &app.get(ME, "cl_unknown-later").await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
}

#[actix_web::test]
async fn the_limiters_forget_keys_once_their_buckets_have_refilled() {
    let (app, clock) = limited_app().await;
    let (_, partner) = app.partner("InsureCo").await;
    expect(&app.get(ME, &partner).await, StatusCode::OK);
    problem(
        &app.get(ME, "cl_unknown").await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    let limits = &app.state.rate_limits;
    // The admin and the partner; this address.
    assert_eq!(limits.tracked(), (2, 1));
    // Pruning keeps a bucket that is not yet full …
    limits.prune();
    assert_eq!(limits.tracked(), (2, 1));
    // … and forgets it once it is: it would start full again anyway.
    clock.advance(Duration::from_secs(1));
    limits.prune();
    assert_eq!(limits.tracked(), (0, 0));
}

#[actix_web::test]
async fn with_no_limit_nothing_is_ever_429() {
    let app = spawn_app().await;
    let (_, partner) = app.partner("InsureCo").await;
    // Far more than any limit the other tests set, with no time passing.
    for i in 0..10 * LIMIT {
        let r = app.post(DECIDE, &partner, question()).await;
        assert_eq!(r.status, StatusCode::OK, "decision {i}: {}", r.body);
        let r = app.get(ME, &format!("cl_unknown{i}")).await;
        problem(&r, StatusCode::UNAUTHORIZED, "unauthorized");
    }
    let metrics = app.get("/metrics", &app.admin).await;
    assert_eq!(metrics.status, StatusCode::OK);
    let text = metrics.body.as_str().unwrap_or_default();
    for limit in ["principal", "unknown_token"] {
        let line = format!("consent_ledger_rate_limited_total{{limit=\"{limit}\"}} 0");
        assert!(text.contains(&line), "{line} in {text}");
    }
}
