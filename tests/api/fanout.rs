//! SPEC §14 consent-gated delivery, with real receivers on loopback: a tracking update reaches
//! each subscribed partner minimised to what it was granted (no byte of another category), the
//! partner's own bundle holds the decision with the SHA-256 of the very body it received and
//! verifies; a partner without consent gets nothing; a revocation stops what is already queued
//! (the cancellation recorded, also across a restart) and what follows; an update sent again
//! fans out once; `consented` subscriptions follow the partner's consents; an erasure deletes
//! the queued bodies; a subscription ends 14 days after delivery with a last message; a
//! carrier-authorized intermediary's deliveries follow its authorization and a shipper's
//! objection (SPEC §16).

use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use consent_ledger_audit::bundle::verify_bundle;
use consent_ledger_audit::note::VerifierKey;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::helpers::{
    consent_for, expect, problem, spawn_app_configured, start_time, Backing, TestApp,
};
use crate::receiver::{loopback_app, loopback_config, verified_independently, Receiver};

const EVENTS: &str = "/v1/tracking-events";
const PATIENCE: Duration = Duration::from_secs(10);
const ALL: [&str; 4] = [
    "status_events",
    "location",
    "proof_of_delivery",
    "recipient_contact",
];

/// A partner with an endpoint to its own receiver.
struct Partner {
    id: String,
    token: String,
    endpoint: Value,
    receiver: Receiver,
}

impl Partner {
    async fn new(app: &TestApp, name: &str) -> Partner {
        let receiver = Receiver::start().await;
        let (id, token) = app.partner(name).await;
        let r = app
            .post(
                "/v1/webhook-endpoints",
                &token,
                json!({ "url": receiver.url }),
            )
            .await;
        let endpoint = expect(&r, StatusCode::CREATED).clone();
        Partner {
            id,
            token,
            endpoint,
            receiver,
        }
    }

    fn endpoint_id(&self) -> &str {
        self.endpoint["id"].as_str().expect("id")
    }

    /// Subscribes to `shipments` for `insurance_claim` and every category; the answer.
    async fn subscribe(&self, app: &TestApp, shipments: &[&str]) -> Reply {
        let items: Vec<Value> = shipments
            .iter()
            .map(|s| json!({ "shipment_id": s }))
            .collect();
        let body = json!({
            "purpose": "insurance_claim",
            "data_categories": ALL,
            "shipments": items,
        });
        let r = app.post("/v1/subscriptions", &self.token, body).await;
        Reply {
            status: r.status,
            body: r.body,
        }
    }

    /// Waits until its receiver got `n` `tracking.updated` messages (at most [`PATIENCE`]);
    /// returns them, in the order received.
    async fn tracking(&self, n: usize) -> Vec<crate::receiver::Received> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let got: Vec<_> = self
                .receiver
                .seen()
                .into_iter()
                .filter(|m| m.json()["type"] == "tracking.updated")
                .collect();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {n} tracking messages",
                got.len()
            );
            actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The `tracking.updated` messages queued for its endpoint, sent or not.
    async fn queued_tracking(&self, app: &TestApp) -> Vec<consent_ledger_store::QueuedMessage> {
        app.state
            .store
            .outbox_of(self.endpoint_id())
            .await
            .expect("outbox")
            .into_iter()
            .filter(|m| m.event_type == "tracking.updated")
            .collect()
    }

    /// Whether its receiver got any `tracking.updated`.
    fn got_tracking(&self) -> bool {
        self.received()
            .iter()
            .any(|(_, body, _)| body["type"] == "tracking.updated")
    }

    /// The messages its receiver got: (webhook-id, body JSON, raw body).
    fn received(&self) -> Vec<(String, Value, Vec<u8>)> {
        self.receiver
            .seen()
            .into_iter()
            .map(|m| (m.id.clone(), m.json(), m.body))
            .collect()
    }
}

struct Reply {
    status: StatusCode,
    body: Value,
}

/// A consent of `shipper` to `partner` on `shipment` for these categories; its id.
async fn grant(
    app: &TestApp,
    shipper: &str,
    partner: &str,
    shipment: &str,
    cats: &[&str],
) -> String {
    let mut body = consent_for(partner, shipment);
    body["data_categories"] = json!(cats);
    let r = app.post("/v1/consents", shipper, body).await;
    expect(&r, StatusCode::CREATED);
    r.id()
}

/// An update of `shipment` with every optional part, each holding a marker no category but
/// its own may leak.
fn update(shipment: &str, status: &str, at: &str) -> Value {
    json!({
        "shipment_id": shipment,
        "status": status,
        "occurred_at": at,
        "description": "Handed over at the door DESC-MARK",
        "location": { "city": "LOC-MARK-Bonn", "postal_code": "53111", "country": "DE" },
        "proof_of_delivery": { "signed_by": "POD-MARK Neighbour", "photo_url": "https://pod.example/p/1.jpg" },
        "recipient_contact": { "email": "contact-mark@example.org", "phone": "+49 228 123456" }
    })
}

async fn send(app: &TestApp, gateway: &str, updates: Vec<Value>) {
    let r = app
        .post(EVENTS, gateway, json!({ "events": updates }))
        .await;
    let body = expect(&r, StatusCode::OK);
    assert_eq!(body["rejected"], json!([]), "{body}");
}

/// Sends one update of `shipment` ([`update`]).
async fn send_one(app: &TestApp, gateway: &str, shipment: &str, status: &str, at: &str) {
    send(app, gateway, vec![update(shipment, status, at)]).await;
}

/// The events of the access stream type in the log from `from` on.
async fn access_log(app: &TestApp, from: u64) -> Vec<consent_ledger_store::StoredEvent> {
    app.log()
        .await
        .into_iter()
        .filter(|e| e.position.get() >= from && e.stream_type == "access")
        .collect()
}

/// The access events of the log from `from` on, as (event type, payload of the variant).
async fn access_events(app: &TestApp, from: u64) -> Vec<(String, Value)> {
    access_log(app, from)
        .await
        .into_iter()
        .map(|e| {
            let payload: Value = serde_json::from_str(e.payload.as_str()).expect("payload");
            let (kind, inner) = payload
                .as_object()
                .and_then(|o| o.iter().next())
                .map(|(k, v)| (k.clone(), v.clone()))
                .expect("one variant");
            (kind, inner)
        })
        .collect()
}

/// Waits until `done` holds (at most [`PATIENCE`]).
async fn eventually<F: Fn() -> Fut, Fut: std::future::Future<Output = bool>>(what: &str, done: F) {
    let deadline = Instant::now() + PATIENCE;
    while !done().await {
        assert!(Instant::now() < deadline, "never: {what}");
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
}

fn has(body: &[u8], marker: &str) -> bool {
    String::from_utf8_lossy(body).contains(marker)
}

#[actix_web::test]
async fn each_subscriber_gets_the_update_minimised_and_its_bundle_proves_the_body() {
    let app = loopback_app(Backing::fresh().await).await;
    let (_, shipper) = app.principal("shipper", "Shop").await;
    let (_, gateway) = app.principal("gateway", "Carrier tracking API").await;
    let shipment = app.shipment(&shipper, "DHL", "JJD-FAN-1", "DE").await;
    let narrow = Partner::new(&app, "Insurer").await;
    let wide = Partner::new(&app, "Returns").await;
    let stranger = Partner::new(&app, "Stranger").await;
    grant(
        &app,
        &shipper,
        &narrow.id,
        &shipment,
        &["status_events", "proof_of_delivery"],
    )
    .await;
    grant(&app, &shipper, &wide.id, &shipment, &ALL).await;

    let r = narrow.subscribe(&app, &[&shipment]).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let subscription = r.body["id"].as_str().expect("id").to_owned();
    assert_eq!(
        wide.subscribe(&app, &[&shipment]).await.status,
        StatusCode::CREATED
    );
    // No consent: the item is rejected with the reason, and nothing is subscribed.
    let r = stranger.subscribe(&app, &[&shipment]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body.get("id").is_none(), "{}", r.body);
    assert_eq!(r.body["rejected"][0]["reason"], "no_consent", "{}", r.body);

    let _worker = app.deliveries();
    let size = app.log_size().await;
    send_one(
        &app,
        &gateway,
        &shipment,
        "out_for_delivery",
        "2026-03-01T09:00:00Z",
    )
    .await;
    let decisions = access_events(&app, size).await;
    assert_eq!(
        decisions.len(),
        2,
        "one decision per subscription: {decisions:?}"
    );
    for (kind, d) in &decisions {
        assert_eq!(kind, "TrackingAccessAllowed");
        assert_eq!(d["channel"], "webhook");
        assert_eq!(d["body_sha256"].as_str().map(str::len), Some(64), "{d}");
    }

    let got = narrow.tracking(1).await.remove(0);
    let body = got.json();
    assert_eq!(body["type"], "tracking.updated");
    let data = &body["data"];
    assert_eq!(data["subscription_id"], subscription.as_str());
    assert_eq!(data["shipment_id"], shipment.as_str());
    assert_eq!(
        data["data_categories"],
        json!(["status_events", "proof_of_delivery"])
    );
    assert_eq!(data["update"]["status"], "out_for_delivery");
    assert_eq!(data["update"]["occurred_at"], "2026-03-01T09:00:00.000000Z");
    assert!(has(&got.body, "DESC-MARK") && has(&got.body, "POD-MARK"));
    assert!(
        !has(&got.body, "LOC-MARK") && !has(&got.body, "53111") && !has(&got.body, "contact-mark"),
        "no byte of an ungranted category: {}",
        String::from_utf8_lossy(&got.body)
    );
    let key = narrow.endpoint["public_key"].as_str().expect("key");
    assert!(verified_independently(key, &got, &got.signature));

    let all = wide.tracking(1).await.remove(0);
    for marker in ["DESC-MARK", "LOC-MARK", "POD-MARK", "contact-mark"] {
        assert!(has(&all.body, marker), "granted everything, got {marker}");
    }
    actix_web::rt::time::sleep(Duration::from_millis(500)).await;
    assert!(stranger.received().is_empty(), "no consent, nothing sent");
    assert_eq!(narrow.tracking(1).await.len(), 1);

    // Proof of lawful receipt: the partner's own bundle holds the decision, whose
    // body_sha256 is the SHA-256 of the bytes it received, and the bundle verifies.
    let vkey: VerifierKey = app.vkey().await;
    let path = format!(
        "/v1/audit/export?partner_id={}&shipment_id={shipment}",
        narrow.id
    );
    let export = app.get(&path, &narrow.token).await;
    assert_eq!(export.status, StatusCode::OK);
    let bundle = export.body.as_str().expect("NDJSON").to_owned();
    verify_bundle(&bundle, &vkey).expect("the partner's bundle verifies");
    let received_sha = hex::encode(Sha256::digest(&got.body));
    let proving: Vec<Value> = bundle
        .lines()
        .skip(1)
        .map(|l| serde_json::from_str::<Value>(l).expect("line"))
        .filter(|l| {
            l["leaf"]
                .as_str()
                .is_some_and(|leaf| leaf.contains(&received_sha))
        })
        .collect();
    assert_eq!(proving.len(), 1, "{bundle}");
    let leaf: Value =
        serde_json::from_str(proving[0]["leaf"].as_str().expect("leaf")).expect("leaf JSON");
    let allowed = &leaf["payload"]["TrackingAccessAllowed"];
    assert_eq!(allowed["decision_id"], data["decision_id"], "{leaf}");
    assert_eq!(allowed["partner"], narrow.id.as_str());
    assert!(!bundle.contains(&wide.id), "only its own decisions");
    // Another partner's bundle is not to be had.
    let path = format!("/v1/audit/export?partner_id={}", wide.id);
    problem(
        &app.get(&path, &narrow.token).await,
        StatusCode::NOT_FOUND,
        "not-found",
    );

    // The access views and the DSAR list the deliveries with their channel.
    let path = format!("/v1/audit/access?shipment_id={shipment}");
    let (_, officer) = app.principal("privacy_officer", "DPO").await;
    let view = app.get(&path, &officer).await;
    let items = expect(&view, StatusCode::OK)["items"]
        .as_array()
        .expect("items")
        .clone();
    // The RoPA counts each partner's allowed reads by channel, over whole days (the daily
    // sums) and over part of one (the decisions themselves): its subscription item and its
    // delivery, both `webhook`.
    for period in [
        "from=2026-02-01T00:00:00Z&to=2026-04-01T00:00:00Z",
        "from=2026-03-01T11:00:00Z&to=2026-03-01T13:00:00Z",
    ] {
        let ropa = app.get(&format!("/v1/audit/ropa?{period}"), &officer).await;
        let partners = expect(&ropa, StatusCode::OK)["partners"].clone();
        for p in [&narrow, &wide] {
            let entry = partners
                .as_array()
                .and_then(|e| e.iter().find(|e| e["partner_id"] == p.id.as_str()))
                .expect("an entry");
            assert_eq!(
                entry["allowed_by_channel"],
                json!({"webhook": 2}),
                "{period}: {entry}"
            );
        }
    }
    // Three decided when they subscribed, two deliveries: all five with their channel.
    let webhook: Vec<&Value> = items.iter().filter(|i| i["channel"] == "webhook").collect();
    assert_eq!(webhook.len(), 5, "{items:?}");
    assert_eq!(
        webhook.iter().filter(|i| i["outcome"] == "allowed").count(),
        4,
        "{items:?}"
    );
}

#[actix_web::test]
async fn a_revocation_stops_what_is_queued_even_across_a_restart_and_what_follows() {
    let app = loopback_app(Backing::fresh().await).await;
    let (_, shipper) = app.principal("shipper", "Shop").await;
    let (_, gateway) = app.principal("gateway", "Carrier tracking API").await;
    let shipment = app.shipment(&shipper, "DHL", "JJD-FAN-2", "DE").await;
    let partner = Partner::new(&app, "Insurer").await;
    let consent = grant(&app, &shipper, &partner.id, &shipment, &ALL).await;
    assert_eq!(
        partner.subscribe(&app, &[&shipment]).await.status,
        StatusCode::CREATED
    );

    // Queued while no worker runs; then the shipper revokes.
    let size = app.log_size().await;
    send_one(
        &app,
        &gateway,
        &shipment,
        "in_transit",
        "2026-03-01T08:00:00Z",
    )
    .await;
    let message = partner.queued_tracking(&app).await.pop().expect("queued");
    let r = app
        .post(
            &format!("/v1/consents/{consent}/revoke"),
            &shipper,
            json!({"reason": "the customer objected"}),
        )
        .await;
    expect(&r, StatusCode::OK);

    // A restart in between changes nothing. The worker comes back an hour later: the
    // cancellation has a time of its own.
    app.clock.advance(chrono::Duration::hours(1));
    let (backing, clock, admin) = app.stop().await;
    let app = spawn_app_configured(backing, clock, Some(admin), loopback_config()).await;
    let _worker = app.deliveries();
    let path = format!("/v1/webhook-endpoints/{}/deliveries", partner.endpoint_id());
    let cancelled = || async {
        let r = app.get(&path, &partner.token).await;
        r.body["items"]
            .as_array()
            .is_some_and(|items| items.iter().any(|i| i["message_state"] == "cancelled"))
    };
    eventually("the queued message is cancelled", cancelled).await;
    let items = app.get(&path, &partner.token).await.body["items"].clone();
    let attempt = items
        .as_array()
        .and_then(|i| {
            i.iter()
                .find(|i| i["message_id"] == message.message_id.as_str())
        })
        .expect("the message's attempt")
        .clone();
    assert_eq!(attempt["error"], "cancelled_consent_revoked", "{attempt}");

    // A later update is decided, denied and recorded; nothing is queued for it.
    send_one(
        &app,
        &gateway,
        &shipment,
        "delivered",
        "2026-03-01T10:00:00Z",
    )
    .await;
    let events = access_events(&app, size).await;
    let kinds: Vec<&str> = events.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "TrackingAccessAllowed",
            "TrackingDeliveryCancelled",
            "TrackingAccessDenied"
        ],
        "{events:?}"
    );
    assert_eq!(events[1].1["reason"], "consent_revoked");
    assert_eq!(events[1].1["decision_id"], events[0].1["decision_id"]);
    assert_eq!(events[2].1["reason"], "consent_revoked");
    assert_eq!(events[2].1["channel"], "webhook");
    // The shipment's, the partner's and the denials' bundles hold the cancellation, whether
    // the export scans the log or selects through the GDPR projection's indexes.
    let (_, regulator) = app.principal("regulator", "DPA").await;
    let positions: Vec<u64> = access_log(&app, size)
        .await
        .iter()
        .map(|e| e.position.get())
        .collect();
    for (query, expected) in [
        (format!("shipment_id={shipment}"), positions.clone()),
        (format!("partner_id={}", partner.id), positions.clone()),
        (
            format!("partner_id={}&outcome=denied", partner.id),
            positions[1..].to_vec(),
        ),
    ] {
        let exported = crate::export::export_positions(&app, &regulator, &query).await;
        let decisions: Vec<u64> = exported.into_iter().filter(|p| *p >= size).collect();
        assert_eq!(decisions, expected, "?{query}");
    }
    // A cancellation is filtered by its own time (SPEC §14): a window of the hour after its
    // decision holds it and the denial after it, and not the decision, whether the export
    // scans the log or finds them through the GDPR projection's time index and the log's index
    // of cancellations.
    let decided_at: chrono::DateTime<chrono::Utc> = events[0].1["decided_at"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .expect("decided_at");
    let half = crate::helpers::rfc3339(decided_at + chrono::Duration::minutes(30));
    for (query, expected) in [
        (format!("from={half}"), positions[1..].to_vec()),
        (format!("to={half}"), positions[..1].to_vec()),
        (
            format!("from={half}&outcome=denied"),
            positions[1..].to_vec(),
        ),
        (format!("from={half}&outcome=allowed"), Vec::new()),
        ("outcome=allowed".to_owned(), positions[..1].to_vec()),
        (
            format!("from={half}&outcome=denied&partner_id={}", partner.id),
            positions[1..].to_vec(),
        ),
    ] {
        let exported = crate::export::export_positions(&app, &regulator, &query).await;
        let decisions: Vec<u64> = exported.into_iter().filter(|p| *p >= size).collect();
        assert_eq!(decisions, expected, "?{query}");
    }
    assert_eq!(
        partner.queued_tracking(&app).await.len(),
        1,
        "nothing queued after the revocation"
    );

    // A cancelled delivery is never redelivered.
    let redeliver = format!("/v1/webhook-deliveries/{}/redeliver", message.message_id);
    problem(
        &app.post(&redeliver, &partner.token, json!({})).await,
        StatusCode::CONFLICT,
        "delivery-cancelled",
    );
    actix_web::rt::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !partner.got_tracking(),
        "no tracking update left after the revocation"
    );
}

#[actix_web::test]
async fn an_update_sent_again_fans_out_once_and_the_subscription_ends_14_days_after_delivery() {
    let app = loopback_app(Backing::fresh().await).await;
    let (_, shipper) = app.principal("shipper", "Shop").await;
    let (_, gateway) = app.principal("gateway", "Carrier tracking API").await;
    let shipment = app.shipment(&shipper, "DHL", "JJD-FAN-3", "DE").await;
    let partner = Partner::new(&app, "Marketplace").await;
    grant(&app, &shipper, &partner.id, &shipment, &["status_events"]).await;
    let r = partner.subscribe(&app, &[&shipment]).await;
    let subscription = r.body["id"].as_str().expect("id").to_owned();
    let _worker = app.deliveries();

    let size = app.log_size().await;
    let delivered = update(&shipment, "delivered", "2026-03-01T11:00:00Z");
    send(&app, &gateway, vec![delivered.clone(), delivered.clone()]).await;
    send(&app, &gateway, vec![delivered]).await;
    assert_eq!(
        access_events(&app, size).await.len(),
        1,
        "one decision for one update"
    );
    partner.tracking(1).await;

    // 13 days on, nothing ends; 14 days on, it ends once with a last message.
    let fanout = consent_ledger_app::fanout::end_subscriptions;
    assert_eq!(
        fanout(&app.state, start_time() + chrono::Duration::days(13)).await,
        0
    );
    assert_eq!(
        fanout(&app.state, start_time() + chrono::Duration::days(15)).await,
        1
    );
    assert_eq!(
        fanout(&app.state, start_time() + chrono::Duration::days(16)).await,
        0
    );
    let all = partner.tracking(2).await;
    let last = all[1].json();
    assert_eq!(last["type"], "tracking.updated");
    assert_eq!(last["data"]["subscription_ended"], true, "{last}");
    assert_eq!(last["data"]["subscription_id"], subscription.as_str());
    let r = app
        .get(&format!("/v1/subscriptions/{subscription}"), &partner.token)
        .await;
    let view = expect(&r, StatusCode::OK);
    assert_eq!(view["status"], "ended", "{view}");
    assert_eq!(view["ended_shipment_ids"], json!([shipment]));

    // Ended: a later update is neither decided for it nor sent.
    let size = app.log_size().await;
    send_one(
        &app,
        &gateway,
        &shipment,
        "exception",
        "2026-03-02T11:00:00Z",
    )
    .await;
    assert!(access_events(&app, size).await.is_empty());
    actix_web::rt::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(partner.tracking(2).await.len(), 2);
}

#[actix_web::test]
async fn a_consented_subscription_follows_the_partners_consents_and_an_erasure_deletes_the_queue() {
    let app = loopback_app(Backing::fresh().await).await;
    let (_, shipper) = app.principal("shipper", "Shop").await;
    let (_, other_shipper) = app.principal("shipper", "Other shop").await;
    let (_, gateway) = app.principal("gateway", "Carrier tracking API").await;
    let (_, officer) = app.principal("privacy_officer", "DPO").await;
    let partner = Partner::new(&app, "Notifier").await;
    let body = json!({
        "partner_id": partner.id,
        "scope": { "type": "shipper" },
        "purposes": ["insurance_claim"],
        "data_categories": ["status_events"],
        "legal_basis": "contract"
    });
    expect(
        &app.post("/v1/consents", &shipper, body).await,
        StatusCode::CREATED,
    );
    let body = json!({
        "purpose": "insurance_claim",
        "data_categories": ["status_events", "location"],
        "scope": "consented",
    });
    let r = app.post("/v1/subscriptions", &partner.token, body).await;
    expect(&r, StatusCode::CREATED);

    // Registered after the subscription, covered by the shipper-wide consent: delivered. The
    // other shipper's parcel: nothing decided, nothing sent.
    let mine = app.shipment(&shipper, "DHL", "JJD-FAN-4", "DE").await;
    let theirs = app.shipment(&other_shipper, "DHL", "JJD-FAN-5", "DE").await;
    let size = app.log_size().await;
    send(
        &app,
        &gateway,
        vec![
            update(&mine, "in_transit", "2026-03-01T08:00:00Z"),
            update(&theirs, "in_transit", "2026-03-01T08:00:00Z"),
        ],
    )
    .await;
    let events = access_events(&app, size).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].1["shipment"], mine.as_str());

    // Queued, not yet sent: an erasure of the parcel deletes the message with its update.
    let message = partner
        .queued_tracking(&app)
        .await
        .pop()
        .expect("queued")
        .message_id;
    let r = app
        .post(
            &format!("/v1/shipments/{mine}/erase"),
            &officer,
            json!({"reason": "the recipient asked (Art. 17)"}),
        )
        .await;
    assert!(r.status.is_success(), "{:?}", r.body);
    assert!(app
        .state
        .store
        .message_state(&message)
        .await
        .expect("read")
        .is_none());
    let _worker = app.deliveries();
    actix_web::rt::time::sleep(Duration::from_millis(800)).await;
    assert!(
        !partner.got_tracking(),
        "an erased parcel's update is never sent"
    );
}

#[actix_web::test]
async fn two_nodes_fan_an_update_out_once_and_a_revocation_on_one_stops_the_others_worker() {
    let a = loopback_app(Backing::fresh().await).await;
    let b = a.second_node_configured(loopback_config()).await;
    let (_, shipper) = a.principal("shipper", "Shop").await;
    let (_, gateway) = a.principal("gateway", "Carrier tracking API").await;
    let shipment = a.shipment(&shipper, "DHL", "JJD-FAN-6", "DE").await;
    let partner = Partner::new(&a, "Insurer").await;
    let consent = grant(&a, &shipper, &partner.id, &shipment, &ALL).await;
    assert_eq!(
        partner.subscribe(&a, &[&shipment]).await.status,
        StatusCode::CREATED
    );
    b.state.projector.catch_up().await.expect("catch up");

    // The gateway sends the same 20 updates to both nodes at once: each fans out once.
    let size = a.log_size().await;
    let updates: Vec<Value> = (0..20)
        .map(|i| {
            update(
                &shipment,
                "in_transit",
                &format!("2026-03-01T08:{i:02}:00Z"),
            )
        })
        .collect();
    let body = json!({ "events": updates });
    let (on_a, on_b) = tokio::join!(
        a.post(EVENTS, &gateway, body.clone()),
        b.post(EVENTS, &gateway, body)
    );
    assert_eq!(expect(&on_a, StatusCode::OK)["accepted"], 20);
    assert_eq!(expect(&on_b, StatusCode::OK)["accepted"], 20);
    let decisions = access_events(&a, size).await;
    assert_eq!(
        decisions.len(),
        20,
        "one decision per update: {decisions:?}"
    );
    assert_eq!(
        partner.queued_tracking(&a).await.len(),
        20,
        "one message per decision"
    );

    // Revoked on B; A's worker, which never saw it applied, sends none of them.
    let r = b
        .post(
            &format!("/v1/consents/{consent}/revoke"),
            &shipper,
            json!({"reason": "the customer objected"}),
        )
        .await;
    expect(&r, StatusCode::OK);
    let _worker = a.deliveries();
    let cancelled = || async {
        let events = access_events(&a, size).await;
        events
            .iter()
            .filter(|(k, _)| k == "TrackingDeliveryCancelled")
            .count()
            == 20
    };
    eventually("all 20 deliveries cancelled", cancelled).await;
    actix_web::rt::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !partner.got_tracking(),
        "nothing left after the revocation on the other node"
    );
}

/// SPEC §16 with §14: a carrier-authorized intermediary's `consented` subscription follows its
/// authorization (no shipper consent at all); the delivery names the authorization and its
/// decision the DPA; the shipper's objection cancels what is queued (recorded with the reason)
/// and stops what follows; its withdrawal lets the next update through.
#[actix_web::test]
async fn an_intermediarys_deliveries_follow_its_authorization_and_stop_at_an_objection() {
    let app = loopback_app(Backing::fresh().await).await;
    let (_, shipper) = app.principal("shipper", "Shop").await;
    let (_, gateway) = app.principal("gateway", "Carrier tracking API").await;
    let relay = Partner::new(&app, "Relay").await;
    let r = app
        .post(
            "/v1/dpas",
            &app.admin,
            json!({
                "partner_id": relay.id, "reference": "DPA-Relay", "role": "processor",
                "signed_at": "2026-01-15T00:00:00Z", "sub_processors": []
            }),
        )
        .await;
    let dpa = expect(&r, StatusCode::CREATED)["id"].clone();
    let r = app
        .post(
            "/v1/authorizations",
            &app.admin,
            json!({
                "partner_id": relay.id, "dpa_id": dpa, "scope": {"carriers": ["DHL"]},
                "purposes": ["insurance_claim"], "data_categories": ["status_events"],
                "legal_basis": "legitimate_interests"
            }),
        )
        .await;
    let authorization = expect(&r, StatusCode::CREATED)["id"].clone();
    let body = json!({
        "purpose": "insurance_claim",
        "data_categories": ["status_events", "location"],
        "scope": "consented",
    });
    expect(
        &app.post("/v1/subscriptions", &relay.token, body).await,
        StatusCode::CREATED,
    );
    let shipment = app.shipment(&shipper, "DHL", "JJD-FAN-AUTH", "DE").await;

    // Queued while no worker runs: minimised to the authorized category, naming it.
    let size = app.log_size().await;
    send_one(
        &app,
        &gateway,
        &shipment,
        "in_transit",
        "2026-03-01T08:00:00Z",
    )
    .await;
    let queued = relay.queued_tracking(&app).await;
    assert_eq!(queued.len(), 1);
    let data: Value = serde_json::from_str(&queued[0].data).expect("data");
    assert_eq!(data["authorization_ids"], json!([authorization]), "{data}");
    assert_eq!(data["consent_ids"], json!([]), "{data}");
    assert_eq!(data["data_categories"], json!(["status_events"]), "{data}");
    assert!(!has(queued[0].data.as_bytes(), "LOC-MARK"), "{data}");

    // The shipper objects before the worker runs: the queued delivery is cancelled.
    let objection = format!(
        "/v1/authorizations/{}/objection",
        authorization.as_str().expect("id")
    );
    let r = app
        .post(
            &objection,
            &shipper,
            json!({"reason": "not through relays"}),
        )
        .await;
    expect(&r, StatusCode::OK);
    let _worker = app.deliveries();
    let path = format!("/v1/webhook-endpoints/{}/deliveries", relay.endpoint_id());
    let cancelled = || async {
        let r = app.get(&path, &relay.token).await;
        r.body["items"].as_array().is_some_and(|items| {
            items
                .iter()
                .any(|i| i["error"] == "cancelled_shipper_objected")
        })
    };
    eventually("the queued message is cancelled", cancelled).await;
    let events = access_events(&app, size).await;
    let kinds: Vec<&str> = events.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        kinds,
        ["TrackingAccessAllowed", "TrackingDeliveryCancelled"],
        "{events:?}"
    );
    assert_eq!(events[0].1["authorizations"], json!([authorization]));
    assert_eq!(events[0].1["dpa"], dpa);
    assert_eq!(events[1].1["reason"], "shipper_objected");

    // While objected: a `consented` subscription no longer covers the parcel, nothing queued.
    send_one(
        &app,
        &gateway,
        &shipment,
        "out_for_delivery",
        "2026-03-01T09:00:00Z",
    )
    .await;
    assert_eq!(relay.queued_tracking(&app).await.len(), 1);
    assert!(!relay.got_tracking(), "nothing reached the intermediary");

    // Withdrawn: the next update is delivered.
    let r = app
        .request_with("DELETE", &objection, Some(&shipper), None)
        .await;
    expect(&r, StatusCode::OK);
    send_one(
        &app,
        &gateway,
        &shipment,
        "delivered",
        "2026-03-01T10:00:00Z",
    )
    .await;
    let got = relay.tracking(1).await;
    let body = got[0].json();
    assert_eq!(body["data"]["update"]["status"], "delivered", "{body}");
    assert_eq!(body["data"]["authorization_ids"], json!([authorization]));
}
