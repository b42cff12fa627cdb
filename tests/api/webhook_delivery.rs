//! SPEC §13 deliveries, to real HTTP receivers on loopback: a grant reaches its partner's
//! endpoint signed (`v1a`), and the signature verifies under two independent implementations
//! (Python's `cryptography`, Node's `crypto`: the partner snippets in docs/webhooks); a failed
//! attempt is retried with the same `webhook-id` and body; `410 Gone` disables the endpoint;
//! after a rotation two signatures are sent and each verifies; a partner gets no other
//! partner's messages and a slow receiver does not hold another's; test messages, the
//! deliveries list and redelivery; what was queued before a restart is delivered after it; two
//! nodes deliver each message once.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use serde_json::{json, Value};

use consent_ledger_app::state::ServiceConfig;

use crate::helpers::{
    consent_for, expect, field_problem, problem, spawn_app_configured, start_time, Backing, TestApp,
};
use crate::receiver::{loopback_app, loopback_config, verified_independently, Receiver};

/// A shipper, a partner with one endpoint (all types) to `receiver`, and a shipment.
struct World {
    shipper: String,
    partner_id: String,
    partner: String,
    endpoint: Value,
    shipment: String,
}

impl World {
    async fn build(app: &TestApp, receiver: &Receiver, name: &str) -> World {
        let (_, shipper) = app.principal("shipper", &format!("Shop {name}")).await;
        let (partner_id, partner) = app.partner(name).await;
        let r = app
            .post(
                "/v1/webhook-endpoints",
                &partner,
                json!({ "url": receiver.url }),
            )
            .await;
        let endpoint = expect(&r, StatusCode::CREATED).clone();
        let shipment = app
            .shipment(&shipper, "DHL", &format!("JJD-{name}-1"), "DE")
            .await;
        World {
            shipper,
            partner_id,
            partner,
            endpoint,
            shipment,
        }
    }

    fn endpoint_id(&self) -> String {
        self.endpoint["id"].as_str().expect("id").to_owned()
    }

    fn public_key(&self) -> String {
        self.endpoint["public_key"]
            .as_str()
            .expect("public_key")
            .to_owned()
    }

    /// Grants a consent to the partner; (consent id, position).
    async fn grant(&self, app: &TestApp) -> (String, u64) {
        let r = app
            .post(
                "/v1/consents",
                &self.shipper,
                consent_for(&self.partner_id, &self.shipment),
            )
            .await;
        expect(&r, StatusCode::CREATED);
        (r.id(), r.position())
    }

    async fn deliveries(&self, app: &TestApp) -> Vec<Value> {
        let path = format!("/v1/webhook-endpoints/{}/deliveries", self.endpoint_id());
        let r = app.get(&path, &self.partner).await;
        expect(&r, StatusCode::OK)["items"]
            .as_array()
            .expect("items")
            .clone()
    }

    async fn endpoint_now(&self, app: &TestApp) -> Value {
        let path = format!("/v1/webhook-endpoints/{}", self.endpoint_id());
        expect(&app.get(&path, &self.partner).await, StatusCode::OK).clone()
    }
}

const PATIENCE: Duration = Duration::from_secs(10);

/// Polls `deliveries` until `done` holds of them (at most `within`).
async fn deliveries_until(
    app: &TestApp,
    world: &World,
    within: Duration,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + within;
    loop {
        let items = world.deliveries(app).await;
        if done(&items) || Instant::now() > deadline {
            assert!(done(&items), "deliveries never settled: {items:?}");
            return items;
        }
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
}

#[actix_web::test]
async fn a_grant_reaches_its_partner_signed_and_two_independent_implementations_verify_it() {
    let receiver = Receiver::start().await;
    let app = loopback_app(Backing::fresh().await).await;
    let _worker = app.deliveries();
    let world = World::build(&app, &receiver, "Insure").await;
    let (consent, position) = world.grant(&app).await;

    let m = receiver.wait_for(1, PATIENCE).await.remove(0);
    let body = m.json();
    assert_eq!(body["type"], "consent.granted", "{body}");
    assert_eq!(body["data"]["consent_id"], consent.as_str(), "{body}");
    assert_eq!(body["data"]["partner_id"], world.partner_id.as_str());
    assert_eq!(
        body["data"]["position"], position,
        "the event's log position"
    );
    assert_eq!(body["data"]["purposes"], json!(["insurance_claim"]));
    assert!(body["timestamp"].is_string(), "{body}");
    assert!(m.id.starts_with("msg_") && m.id.len() == 36, "{}", m.id);
    let sent_at: i64 = m.timestamp.parse().expect("Unix seconds");
    assert!((sent_at - chrono::Utc::now().timestamp()).abs() < 60);
    assert_eq!(m.signature.split(' ').count(), 1, "one key, one signature");
    assert!(m.signature.starts_with("v1a,"), "{}", m.signature);
    assert!(body.to_string().len() < 20_000, "a message is under 20 kB");

    // Our own verifier agrees, and so do two others; a changed body or another key fails.
    let public = world.public_key();
    consent_ledger_audit::webhook::verify(&public, &m.signature, &m.id, sent_at, &m.body)
        .expect("verifies with the whpk_ key");
    assert!(verified_independently(&public, &m, &m.signature));
    let mut tampered = m.clone();
    tampered.body = String::from_utf8(m.body.clone())
        .expect("UTF-8")
        .replacen("insurance_claim", "marketing_claim", 1)
        .into_bytes();
    assert_ne!(tampered.body, m.body);
    assert!(!verified_independently(&public, &tampered, &m.signature));

    // The delivery is listed: its status, latency, no next retry; counted in /metrics.
    let items = deliveries_until(&app, &world, PATIENCE, |items| !items.is_empty()).await;
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0]["message_id"], m.id.as_str());
    assert_eq!(items[0]["event_type"], "consent.granted");
    assert_eq!(items[0]["attempt"], 1);
    assert_eq!(items[0]["status"], 204);
    assert_eq!(items[0]["message_state"], "delivered");
    assert!(items[0]["next_attempt_at"].is_null());
    assert!(items[0]["latency_ms"].is_i64());
    let metrics = app.get("/metrics", &app.admin).await;
    let text = metrics.body.as_str().unwrap_or_default();
    for line in [
        "consent_ledger_webhook_messages_queued_total 1",
        "consent_ledger_webhook_attempts_total{outcome=\"delivered\"} 1",
        "consent_ledger_webhook_attempt_duration_seconds_count 1",
    ] {
        assert!(text.contains(line), "{line} not in /metrics:\n{text}");
    }
}

#[actix_web::test]
async fn a_failed_attempt_is_retried_with_the_same_id_and_body() {
    let receiver = Receiver::start().await;
    receiver.answer_next(&[500]);
    let app = loopback_app(Backing::fresh().await).await;
    let _worker = app.deliveries();
    let world = World::build(&app, &receiver, "Retry").await;
    world.grant(&app).await;

    let seen = receiver.wait_for(2, Duration::from_secs(20)).await;
    assert_eq!(seen[0].id, seen[1].id, "a retry keeps its webhook-id");
    assert_eq!(seen[0].body, seen[1].body, "and its body");
    let waited = seen[1].at - seen[0].at;
    assert!(
        waited >= Duration::from_secs(4),
        "the first retry comes after 5 s ±20 %, not {waited:?}"
    );
    let items = deliveries_until(&app, &world, PATIENCE, |items| items.len() == 2).await;
    assert_eq!(items[0]["attempt"], 2, "newest first: {items:?}");
    assert_eq!(items[0]["status"], 204);
    assert_eq!(items[0]["message_state"], "delivered");
    assert_eq!(items[1]["attempt"], 1);
    assert_eq!(items[1]["status"], 500);
}

#[actix_web::test]
async fn a_410_gone_gives_the_message_up_and_disables_the_endpoint() {
    let receiver = Receiver::start().await;
    receiver.answer_next(&[410]);
    let app = loopback_app(Backing::fresh().await).await;
    let _worker = app.deliveries();
    let world = World::build(&app, &receiver, "Gone").await;
    world.grant(&app).await;

    receiver.wait_for(1, PATIENCE).await;
    let items = deliveries_until(&app, &world, PATIENCE, |items| !items.is_empty()).await;
    assert_eq!(items[0]["status"], 410);
    assert_eq!(items[0]["message_state"], "failed", "given up, not retried");
    let deadline = Instant::now() + PATIENCE;
    let endpoint = loop {
        let endpoint = world.endpoint_now(&app).await;
        if endpoint["status"] == "disabled" || Instant::now() > deadline {
            break endpoint;
        }
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(endpoint["status"], "disabled", "{endpoint}");
    assert_eq!(endpoint["disabled_by"], "gone", "{endpoint}");
    assert!(endpoint["disabled_reason"]
        .as_str()
        .is_some_and(|r| r.contains("410")));

    // Disabled: the next grant queues nothing for it, and a redelivery waits for an enable.
    world.grant(&app).await;
    let queued = app
        .state
        .store
        .outbox_of(&world.endpoint_id())
        .await
        .expect("outbox");
    assert_eq!(queued.len(), 1, "nothing queued for a disabled endpoint");
    let redeliver = format!("/v1/webhook-deliveries/{}/redeliver", queued[0].message_id);
    let r = app.post(&redeliver, &world.partner, json!({})).await;
    problem(&r, StatusCode::CONFLICT, "endpoint-disabled");
    actix_web::rt::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.seen().len(), 1, "nothing more was sent");
}

#[actix_web::test]
async fn after_a_rotation_both_keys_sign_and_each_signature_verifies() {
    let receiver = Receiver::start().await;
    let app = loopback_app(Backing::fresh().await).await;
    let _worker = app.deliveries();
    let world = World::build(&app, &receiver, "Rotate").await;
    let old = world.public_key();
    let path = format!("/v1/webhook-endpoints/{}/rotate-key", world.endpoint_id());
    let r = app.post(&path, &world.partner, json!({})).await;
    let new = expect(&r, StatusCode::OK)["public_key"]
        .as_str()
        .expect("public_key")
        .to_owned();
    assert_ne!(new, old);
    world.grant(&app).await;

    let m = receiver.wait_for(1, PATIENCE).await.remove(0);
    let signatures: Vec<&str> = m.signature.split(' ').collect();
    assert_eq!(
        signatures.len(),
        2,
        "two signatures during the overlap: {}",
        m.signature
    );
    let ts: i64 = m.timestamp.parse().expect("timestamp");
    for (key, signature) in [(&new, signatures[0]), (&old, signatures[1])] {
        consent_ledger_audit::webhook::verify(key, signature, &m.id, ts, &m.body)
            .unwrap_or_else(|e| panic!("{signature} under {key}: {e}"));
        assert!(verified_independently(key, &m, signature));
    }
    // Each key verifies the header as a receiver holding only it would read it.
    assert!(verified_independently(&old, &m, &m.signature));
    assert!(verified_independently(&new, &m, &m.signature));
    assert!(!verified_independently(&new, &m, signatures[1]));
}

#[actix_web::test]
async fn a_partner_gets_only_its_own_messages_and_a_slow_receiver_holds_no_other() {
    let slow = Receiver::start().await;
    slow.script.delay_ms.store(8_000, Relaxed);
    let fast = Receiver::start().await;
    let app = loopback_app(Backing::fresh().await).await;
    let _worker = app.deliveries();
    let slow_world = World::build(&app, &slow, "Slow").await;
    let fast_world = World::build(&app, &fast, "Fast").await;

    // The slow partner's receiver holds its slots with more messages than it has slots.
    let mut slow_consents = Vec::new();
    for _ in 0..12 {
        slow_consents.push(slow_world.grant(&app).await.0);
    }
    slow.wait_for(1, PATIENCE).await;
    let started = Instant::now();
    let (fast_consent, _) = fast_world.grant(&app).await;
    let m = fast.wait_for(1, PATIENCE).await.remove(0);
    let took = m.at - started;
    assert!(
        took < Duration::from_secs(3),
        "the other partner's message waited {took:?} behind a slow receiver"
    );
    assert_eq!(m.json()["data"]["consent_id"], fast_consent.as_str());
    assert_eq!(fast.seen().len(), 1, "no other partner's message");
    for m in slow.seen() {
        let consent = m.json()["data"]["consent_id"].as_str().map(str::to_owned);
        assert!(
            consent.is_some_and(|c| slow_consents.contains(&c)),
            "the slow partner got only its own: {}",
            String::from_utf8_lossy(&m.body)
        );
    }
    assert!(
        slow.seen().len() <= 8,
        "at most the per-endpoint bound in flight at once: {}",
        slow.seen().len()
    );
}

#[actix_web::test]
async fn a_test_message_is_listed_and_can_be_redelivered_by_its_partner_only() {
    let receiver = Receiver::start().await;
    let app = loopback_app(Backing::fresh().await).await;
    let _worker = app.deliveries();
    let world = World::build(&app, &receiver, "Tester").await;
    let (_, other) = app.partner("Nosy").await;
    let path = format!("/v1/webhook-endpoints/{}/test", world.endpoint_id());
    let size = app.log_size().await;
    let r = app.post(&path, &world.partner, json!({})).await;
    let sent = expect(&r, StatusCode::ACCEPTED).clone();
    assert_eq!(app.log_size().await, size + 1, "WebhookTestSent recorded");
    let message_id = sent["message_id"].as_str().expect("message_id").to_owned();
    assert_eq!(sent["position"], size);

    let m = receiver.wait_for(1, PATIENCE).await.remove(0);
    assert_eq!(m.id, message_id);
    let body = m.json();
    assert_eq!(body["type"], "webhook.test", "{body}");
    assert_eq!(body["data"]["endpoint_id"], world.endpoint_id().as_str());
    assert!(verified_independently(
        &world.public_key(),
        &m,
        &m.signature
    ));
    deliveries_until(&app, &world, PATIENCE, |items| items.len() == 1).await;

    // Redelivered: the same id and body again, a second attempt listed.
    let redeliver = format!("/v1/webhook-deliveries/{message_id}/redeliver");
    let r = app.post(&redeliver, &other, json!({})).await;
    problem(&r, StatusCode::NOT_FOUND, "not-found");
    let r = app.post(&redeliver, &world.partner, json!({})).await;
    let answer = expect(&r, StatusCode::ACCEPTED);
    assert_eq!(answer["message_state"], "pending");
    let seen = receiver.wait_for(2, PATIENCE).await;
    assert_eq!(seen[1].id, message_id);
    assert_eq!(seen[1].body, seen[0].body);
    let items = deliveries_until(&app, &world, PATIENCE, |items| items.len() == 2).await;
    assert_eq!(items[0]["attempt"], 2);
    assert_eq!(items[0]["message_state"], "delivered");

    // Paging: a dozen more messages (attempts in the same millisecond are likely); pages of 5
    // walked by `next_cursor` give exactly the single page of everything, in the same order.
    for _ in 0..12 {
        expect(
            &app.post(&path, &world.partner, json!({})).await,
            StatusCode::ACCEPTED,
        );
    }
    receiver.wait_for(14, PATIENCE).await;
    let all = deliveries_until(&app, &world, PATIENCE, |items| items.len() == 14).await;
    let mut paged = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut page = format!(
            "/v1/webhook-endpoints/{}/deliveries?limit=5",
            world.endpoint_id()
        );
        if let Some(c) = &cursor {
            page.push_str(&format!("&cursor={c}"));
        }
        let r = app.get(&page, &world.partner).await;
        let body = expect(&r, StatusCode::OK).clone();
        paged.extend(body["items"].as_array().expect("items").iter().cloned());
        match body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(paged, all, "pages of 5 lose or repeat nothing");
    let r = app
        .get(
            &format!(
                "/v1/webhook-endpoints/{}/deliveries?cursor=yesterday",
                world.endpoint_id()
            ),
            &world.partner,
        )
        .await;
    field_problem(
        &r,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-field",
        "cursor",
    );

    // Refusals name the field and record nothing.
    let size = app.log_size().await;
    let r = app
        .post(
            "/v1/webhook-deliveries/nope/redeliver",
            &world.partner,
            json!({}),
        )
        .await;
    field_problem(
        &r,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-field",
        "message_id",
    );
    let r = app
        .post(
            "/v1/webhook-deliveries/msg_0123456789abcdef0123456789abcdef/redeliver",
            &world.partner,
            json!({}),
        )
        .await;
    problem(&r, StatusCode::NOT_FOUND, "not-found");
    let limit = format!(
        "/v1/webhook-endpoints/{}/deliveries?limit=0",
        world.endpoint_id()
    );
    let r = app.get(&limit, &world.partner).await;
    field_problem(
        &r,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid-field",
        "limit",
    );
    let disable = format!("/v1/webhook-endpoints/{}/disable", world.endpoint_id());
    expect(
        &app.post(&disable, &world.partner, json!({})).await,
        StatusCode::OK,
    );
    let size_disabled = app.log_size().await;
    let r = app.post(&path, &world.partner, json!({})).await;
    problem(&r, StatusCode::CONFLICT, "endpoint-disabled");
    assert_eq!(app.log_size().await, size_disabled);
    assert_eq!(size_disabled, size + 1, "only the disable was recorded");
}

#[actix_web::test]
async fn what_was_queued_before_a_restart_is_delivered_after_it() {
    let receiver = Receiver::start().await;
    let app = loopback_app(Backing::fresh().await).await;
    let world = World::build(&app, &receiver, "Restart").await;
    let (consent, _) = world.grant(&app).await;
    let (backing, clock, admin) = app.stop().await;
    assert!(receiver.seen().is_empty(), "no worker ran: nothing sent");

    let app = spawn_app_configured(backing, clock, Some(admin), loopback_config()).await;
    let _worker = app.deliveries();
    let m = receiver.wait_for(1, PATIENCE).await.remove(0);
    assert_eq!(m.json()["data"]["consent_id"], consent.as_str());
    assert!(verified_independently(
        &world.public_key(),
        &m,
        &m.signature
    ));
}

#[actix_web::test]
async fn two_nodes_deliver_each_message_once() {
    let receiver = Receiver::start().await;
    let app = loopback_app(Backing::fresh().await).await;
    let world = World::build(&app, &receiver, "Nodes").await;
    let second = app.second_node_configured(loopback_config()).await;
    let _first_worker = app.deliveries();
    let _second_worker = second.deliveries();

    let mut consents = Vec::new();
    for i in 0..30 {
        let node = if i % 2 == 0 { &app } else { &second };
        consents.push(world.grant(node).await.0);
    }
    let seen = receiver
        .wait_for(consents.len(), Duration::from_secs(20))
        .await;
    actix_web::rt::time::sleep(Duration::from_millis(500)).await;
    let seen_after = receiver.seen();
    assert_eq!(
        seen_after.len(),
        consents.len(),
        "each message attempted once across the two nodes"
    );
    let mut by_consent: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for m in &seen {
        let consent = m.json()["data"]["consent_id"]
            .as_str()
            .expect("consent_id")
            .to_owned();
        by_consent.entry(consent).or_default().push(m.id.clone());
    }
    for consent in &consents {
        assert_eq!(
            by_consent.get(consent).map(Vec::len),
            Some(1),
            "{consent}: {by_consent:?}"
        );
    }
}

/// The types of the messages a receiver got with their `data`, in log order (deliveries run
/// concurrently: a receiver may get them in another order).
fn received(receiver: &Receiver) -> Vec<(String, Value)> {
    let mut got: Vec<(String, Value)> = receiver
        .seen()
        .iter()
        .map(|m| {
            let body = m.json();
            (
                body["type"].as_str().unwrap_or_default().to_owned(),
                body["data"].clone(),
            )
        })
        .collect();
    got.sort_by_key(|(_, data)| data["position"].as_u64());
    got
}

#[actix_web::test]
async fn request_answers_and_their_expiry_reach_the_partner_that_asked() {
    let receiver = Receiver::start().await;
    let bystander = Receiver::start().await;
    let app = loopback_app(Backing::fresh().await).await;
    let _worker = app.deliveries();
    let world = World::build(&app, &receiver, "Asker").await;
    // Another partner with an endpoint of its own, which must hear nothing of these.
    World::build(&app, &bystander, "Bystander").await;
    let me = app.get("/v1/me", &world.shipper).await;
    let shipper_id = me.id();
    let ask = || {
        json!({
            "shipper_id": shipper_id,
            "scope": { "type": "shipments", "shipment_ids": [world.shipment] },
            "purposes": ["insurance_claim"],
            "data_categories": ["status_events"],
            "legal_basis": "contract",
            "justification": "we settle this parcel's claims"
        })
    };
    let mut requests = Vec::new();
    for _ in 0..3 {
        let r = app
            .post("/v1/consent-requests", &world.partner, ask())
            .await;
        requests.push(
            expect(&r, StatusCode::CREATED)["id"]
                .as_str()
                .expect("id")
                .to_owned(),
        );
    }

    // Approved: `consent_request.approved` from the approval's commit, then `consent.granted`
    // from the grant's, naming the request.
    let r = app
        .post(
            &format!("/v1/consent-requests/{}/approve", requests[0]),
            &world.shipper,
            json!({}),
        )
        .await;
    let consent = expect(&r, StatusCode::OK)["consent_id"]
        .as_str()
        .expect("consent_id")
        .to_owned();
    receiver.wait_for(2, PATIENCE).await;
    let got = received(&receiver);
    assert_eq!(got[0].0, "consent_request.approved", "{got:?}");
    assert_eq!(got[0].1["request_id"], requests[0].as_str());
    assert_eq!(got[0].1["consent_id"], consent.as_str());
    assert_eq!(got[1].0, "consent.granted");
    assert_eq!(got[1].1["consent_id"], consent.as_str());
    assert_eq!(got[1].1["request_id"], requests[0].as_str());

    // Denied: `consent_request.denied`, without the shipper's free-text reason.
    let r = app
        .post(
            &format!("/v1/consent-requests/{}/deny", requests[1]),
            &world.shipper,
            json!({ "reason": "the recipient objected by phone" }),
        )
        .await;
    expect(&r, StatusCode::OK);
    receiver.wait_for(3, PATIENCE).await;
    let got = received(&receiver);
    assert_eq!(got[2].0, "consent_request.denied");
    assert_eq!(got[2].1["request_id"], requests[1].as_str());
    assert!(
        !got[2].1.to_string().contains("objected"),
        "no free text in a message"
    );

    // Expired after the request's time ran out, by the housekeeping sweep: once.
    app.clock.advance(chrono::Duration::days(31));
    consent_ledger_app::approvals::expire_requests(&app.state).await;
    consent_ledger_app::approvals::expire_requests(&app.state).await;
    receiver.wait_for(4, PATIENCE).await;
    let got = received(&receiver);
    assert_eq!(got[3].0, "consent_request.expired");
    assert_eq!(got[3].1["request_id"], requests[2].as_str());
    actix_web::rt::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.seen().len(), 4, "{:?}", received(&receiver));
    assert!(bystander.seen().is_empty(), "nothing for another partner");
}

#[actix_web::test]
async fn a_consent_near_its_end_is_noticed_once_then_its_expiry_once() {
    let receiver = Receiver::start().await;
    let app = loopback_app(Backing::fresh().await).await;
    let _worker = app.deliveries();
    let world = World::build(&app, &receiver, "Ending").await;
    let mut body = consent_for(&world.partner_id, &world.shipment);
    let until = start_time() + chrono::Duration::days(10);
    body["valid_until"] = json!(until);
    let r = app.post("/v1/consents", &world.shipper, body).await;
    let consent = expect(&r, StatusCode::CREATED)["id"]
        .as_str()
        .expect("id")
        .to_owned();
    receiver.wait_for(1, PATIENCE).await;
    let notice = || consent_ledger_app::webhooks::expiry::notice_expiries(&app.state);

    notice().await;
    let size = app.log_size().await;
    app.clock.advance(chrono::Duration::days(4));
    notice().await;
    notice().await;
    assert_eq!(app.log_size().await, size + 1, "one ConsentExpiryNoticed");
    let m = receiver.wait_for(2, PATIENCE).await.remove(1);
    assert_eq!(m.json()["type"], "consent.expiring", "{}", m.json());
    assert_eq!(m.json()["data"]["consent_id"], consent.as_str());
    assert_eq!(m.json()["data"]["valid_until"], json!(until));

    app.clock.advance(chrono::Duration::days(7));
    notice().await;
    notice().await;
    assert_eq!(app.log_size().await, size + 2, "and one for the expiry");
    let m = receiver.wait_for(3, PATIENCE).await.remove(2);
    assert_eq!(m.json()["type"], "consent.expired");
    assert_eq!(m.json()["data"]["consent_id"], consent.as_str());

    // A restart (the notices are in the snapshot-less model rebuilt from the log) notices
    // nothing again.
    let (backing, clock, admin) = app.stop().await;
    let app = spawn_app_configured(backing, clock, Some(admin), loopback_config()).await;
    consent_ledger_app::webhooks::expiry::notice_expiries(&app.state).await;
    assert_eq!(app.log_size().await, size + 2);
    actix_web::rt::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.seen().len(), 3, "{:?}", received(&receiver));
}

#[actix_web::test]
async fn an_endpoint_whose_attempts_keep_failing_is_disabled_and_says_why() {
    let receiver = Receiver::start().await;
    receiver.script.otherwise.store(500, Relaxed);
    let app = loopback_app(Backing::fresh().await).await;
    // Five days shrunk to nothing: the first failure already spans the whole period.
    let _worker = app.deliveries_with(consent_ledger_app::webhooks::delivery::DeliveryOptions {
        poll: Duration::from_millis(100),
        disable_after: Duration::ZERO,
        ..Default::default()
    });
    let world = World::build(&app, &receiver, "Failing").await;
    world.grant(&app).await;
    receiver.wait_for(1, PATIENCE).await;
    let deadline = Instant::now() + PATIENCE;
    let endpoint = loop {
        let endpoint = world.endpoint_now(&app).await;
        if endpoint["status"] == "disabled" || Instant::now() > deadline {
            break endpoint;
        }
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(endpoint["status"], "disabled", "{endpoint}");
    assert_eq!(endpoint["disabled_by"], "failing", "{endpoint}");
    assert!(
        endpoint["disabled_reason"]
            .as_str()
            .is_some_and(|r| r.contains("failed since")),
        "{endpoint}"
    );
    // The pending retry is not sent to a disabled endpoint.
    actix_web::rt::time::sleep(Duration::from_secs(7)).await;
    assert_eq!(receiver.seen().len(), 1, "nothing after the disable");
    let items = world.deliveries(&app).await;
    assert_eq!(items[0]["error"], "endpoint_disabled", "{items:?}");
    assert_eq!(items[0]["message_state"], "failed");
}

#[actix_web::test]
async fn every_connection_checks_its_target_again() {
    let receiver = Receiver::start().await;
    let app = loopback_app(Backing::fresh().await).await;
    let world = World::build(&app, &receiver, "Rebound").await;
    world.grant(&app).await;
    // The same store served without the loopback switch: the endpoint registered under it is
    // now a forbidden target, and the worker refuses to connect to it.
    let (backing, clock, admin) = app.stop().await;
    let app = spawn_app_configured(backing, clock, Some(admin), ServiceConfig::default()).await;
    let _worker = app.deliveries();
    let items = deliveries_until(&app, &world, PATIENCE, |items| !items.is_empty()).await;
    assert_eq!(items[0]["error"], "refused_url", "{items:?}");
    assert!(items[0]["status"].is_null());
    assert_eq!(items[0]["message_state"], "pending", "retried later");
    assert!(receiver.seen().is_empty(), "nothing reached the receiver");
}
