//! The delivery worker (SPEC §13, docs/adr/0010): one per node, on a thread of its own running
//! an actix system, so its HTTP client never shares a runtime with the decision path.
//!
//! It claims due messages from the durable outbox (a lease per message, so on several nodes
//! each is attempted by one node at a time), at most [`DeliveryOptions::per_endpoint`] of one
//! endpoint in flight and [`DeliveryOptions::in_flight`] in all — a slow receiver fills only its
//! own slots. Each attempt resolves the URL's host, checks every address, connects to a
//! checked one (TLS and `Host` still name the URL's host), signs the body with every live key
//! and waits at most 15 s. Finished attempts are recorded together, one transaction for all
//! that finished meanwhile. A 2xx is delivered; `410 Gone` gives the message up and disables
//! the endpoint; anything else is retried on [`RETRY_SCHEDULE`] with ±20 % jitter
//! (`Retry-After` honoured on 429, 502, 503 and 504, never sooner than the schedule), then
//! given up; an endpoint whose attempts all failed for [`DeliveryOptions::disable_after`] is
//! disabled, with the reason the partner reads on the endpoint.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use consent_ledger_audit::webhook::{signature_header, WebhookKey};
use consent_ledger_domain::values::{Reason, WebhookEndpointId};
use consent_ledger_domain::webhook::{DisabledBy, WebhookEndpointCommand, WebhookEventType};
use consent_ledger_projections::model::{WebhookEndpointView, WebhookStatus};
use consent_ledger_store::cqrs::CommandMeta;
use consent_ledger_store::outbox::{AttemptOutcome, AttemptRecord, ClaimLimits};
use consent_ledger_store::QueuedMessage;
use tokio::sync::{mpsc, oneshot};

use crate::background::Worker;
use crate::fanout::{self, Grounds};
use crate::state::AppState;
pub use crate::webhooks::metrics::{DeliveryMetrics, SigningKeys, LATENCY_BUCKETS};
use crate::webhooks::target::WebhookUrl;

/// After the n-th failed attempt, the next comes this long after it (±20 %): 5 s, 5 min,
/// 30 min, 2 h, 5 h, 10 h, 10 h; after the eighth, the message is given up.
pub const RETRY_SCHEDULE: [Duration; 7] = [
    Duration::from_secs(5),
    Duration::from_secs(5 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(5 * 3600),
    Duration::from_secs(10 * 3600),
    Duration::from_secs(10 * 3600),
];

/// The longest an attempt waits for its answer (connection included).
pub const TIMEOUT: Duration = Duration::from_secs(15);

/// How long a claim holds a message: longer than an attempt can take.
const LEASE: Duration = Duration::from_secs(30);

/// How long the key before a rotation keeps signing beside the new one.
const ROTATION_OVERLAP: chrono::Duration = chrono::Duration::hours(24);

/// The longest `Retry-After` obeyed.
const RETRY_AFTER_CAP: Duration = Duration::from_secs(24 * 3600);

/// The most of a receiver's answer read (then dropped): enough to keep the connection.
const ANSWER_LIMIT: usize = 64 * 1024;

/// How the worker runs.
#[derive(Debug, Clone, Copy)]
pub struct DeliveryOptions {
    /// Messages of one endpoint in flight at once, on this node.
    pub per_endpoint: u32,
    /// Messages in flight at once, on this node.
    pub in_flight: u32,
    /// An endpoint whose every attempt failed for this long is disabled (SPEC §13: 5 days).
    pub disable_after: Duration,
    /// How often the outbox is looked at when nothing announced a write (retries come due).
    pub poll: Duration,
}

impl Default for DeliveryOptions {
    fn default() -> Self {
        Self {
            per_endpoint: 8,
            in_flight: 128,
            disable_after: Duration::from_secs(5 * 24 * 3600),
            poll: Duration::from_millis(500),
        }
    }
}

/// A running worker; dropping it (or [`Deliveries::stop`]) stops it. Attempts in flight are
/// abandoned: their leases run out and they are attempted again, with the same `webhook-id`.
pub struct Deliveries(Worker);

impl Deliveries {
    /// Starts this node's worker on a thread of its own.
    pub fn spawn(state: Arc<AppState>, options: DeliveryOptions) -> std::io::Result<Self> {
        Worker::spawn("webhook-deliveries", move |stopped| {
            actix_rt::System::new().block_on(run(state, options, stopped));
        })
        .map(Self)
    }

    /// Stops the worker and waits for its thread.
    pub fn stop(self) {
        self.0.stop();
    }
}

fn now_millis() -> i64 {
    Utc::now().timestamp_millis()
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// This node's name in the outbox's leases: kept in its data directory, so that a restart
/// (after a crash) knows the leases it held and takes its messages back at once.
fn node_name(state: &AppState) -> String {
    let fresh = || format!("node_{}", uuid::Uuid::now_v7().simple());
    let Some(dir) = state.snapshot_path.parent() else {
        return fresh();
    };
    let path = dir.join("webhook-node.id");
    match std::fs::read_to_string(&path) {
        Ok(name) if name.trim().starts_with("node_") => name.trim().to_owned(),
        _ => {
            let name = fresh();
            let tmp = dir.join(format!("webhook-node.id.{}", uuid::Uuid::now_v7().simple()));
            let kept = private_file(&tmp, &name).and_then(|()| std::fs::rename(&tmp, &path));
            if let Err(e) = kept {
                let _ = std::fs::remove_file(&tmp);
                tracing::warn!(error = %e, "could not keep the webhook node name; a restart waits for its leases");
            }
            name
        }
    }
}

/// Writes `text` to a new file only its owner may read, like every file of the data directory.
fn private_file(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

async fn run(state: Arc<AppState>, options: DeliveryOptions, mut stop: oneshot::Receiver<()>) {
    let node = node_name(&state);
    match state.store.release_leases(&node).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(%node, messages = n, "took back the messages a stop left claimed"),
        Err(e) => {
            tracing::warn!(error = %e, "releasing this node's old leases failed; they run out")
        }
    }
    tracing::info!(%node, per_endpoint = options.per_endpoint, in_flight = options.in_flight, "webhook deliveries started");
    let client = awc::Client::builder()
        .connector(awc::Connector::new().timeout(Duration::from_secs(5)))
        .timeout(TIMEOUT)
        .disable_redirects()
        .add_default_header(("user-agent", "consent-ledger-webhooks/1"))
        .finish();
    let (done, mut finished_rx) = mpsc::unbounded_channel::<AttemptRecord>();
    // Woken by the commits that queue messages (not by every decision: on SQLite one that
    // queues nothing leaves the outbox as it was) and by redeliveries; `poll` for the rest.
    let mut committed = state.store.subscribe_outbox();
    let mut finished: Vec<AttemptRecord> = Vec::new();
    let mut in_flight: u32 = 0;
    loop {
        while let Ok(record) = finished_rx.try_recv() {
            finished.push(record);
        }
        // The attempts that finished are recorded, and the next messages claimed, in one
        // transaction: one commit a cycle.
        let free = options
            .in_flight
            .saturating_sub(in_flight.saturating_sub(finished.len() as u32));
        let now = now_millis();
        let limits = ClaimLimits {
            now,
            lease_until: now + millis(LEASE),
            per_endpoint: options.per_endpoint,
            limit: free,
        };
        let claimed = if !finished.is_empty() {
            match state.store.record_and_claim(&node, &finished, limits).await {
                Ok(messages) => {
                    in_flight = in_flight.saturating_sub(finished.len() as u32);
                    after_recorded(&state, &options, std::mem::take(&mut finished)).await;
                    Ok(messages)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "recording webhook attempts failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            }
        } else if free > 0 {
            state.store.claim_messages(&node, limits).await
        } else {
            Ok(Vec::new())
        };
        match claimed {
            Ok(messages) => {
                // SPEC §14: a revocation any node committed is seen before a message
                // resting on it is sent; a model that cannot catch up sends none of them.
                let checked = !messages.iter().any(|m| Grounds::of(m).is_some())
                    || match state.projector.catch_up().await {
                        Ok(_) => true,
                        Err(e) => {
                            tracing::warn!(error = %e, "catching up before tracking deliveries failed; they wait");
                            false
                        }
                    };
                for message in messages {
                    in_flight += 1;
                    let (state, client, done) = (state.clone(), client.clone(), done.clone());
                    actix_rt::spawn(async move {
                        let record = attempt(&state, &client, message, checked).await;
                        let _ = done.send(record);
                    });
                }
            }
            Err(e) => tracing::warn!(error = %e, "claiming webhook messages failed"),
        }
        tokio::select! {
            _ = &mut stop => break,
            Some(record) = finished_rx.recv() => finished.push(record),
            changed = committed.changed() => {
                if changed.is_err() {
                    break;
                }
                // Let a burst of commits settle into one look at the outbox.
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            _ = tokio::time::sleep(options.poll) => {}
        }
    }
    tracing::info!(%node, in_flight, "webhook deliveries stopped");
}

/// The message's body, the same bytes at every attempt: `{"type","timestamp","data"}` with
/// the event's position in `data`, canonical JSON (RFC 8785).
pub fn body(message: &QueuedMessage) -> Result<Vec<u8>, serde_json::Error> {
    let position = (message.event_type != WebhookEventType::TrackingUpdated.as_str())
        .then(|| message.position.get());
    super::outbox::render(
        &message.event_type,
        &message.occurred_at,
        &message.data,
        position,
    )
}

/// SPEC §14, right before a tracking update leaves: `None` when what allowed it still holds
/// (on a model caught up with every node's commits); otherwise the attempt it comes to — the
/// delivery cancelled for good, recorded once in the log, or, when that record or the
/// catch-up failed, tried again shortly.
async fn recheck(
    state: &AppState,
    endpoint: &WebhookEndpointView,
    grounds: &Grounds,
    checked: bool,
) -> Option<AttemptRecord> {
    let later = |error: &str| AttemptRecord {
        message_id: String::new(),
        endpoint_id: String::new(),
        attempted_at: 0,
        status: None,
        error: Some(error.to_owned()),
        latency_ms: 0,
        outcome: AttemptOutcome::RetryAt(now_millis() + 5_000),
    };
    if !checked {
        return Some(later("not_checked"));
    }
    let lost = grounds.lost(
        &state.projector.read(),
        endpoint.partner_id,
        state.clock.now(),
    )?;
    match fanout::cancel(state, endpoint.partner_id, grounds, lost).await {
        Ok(()) => {
            let reason = serde_json::to_value(lost)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            Some(AttemptRecord {
                error: Some(format!("cancelled_{reason}")),
                outcome: AttemptOutcome::Cancelled,
                ..later("")
            })
        }
        Err(e) => {
            tracing::warn!(error = %e, "recording a cancelled delivery failed; checked again shortly");
            Some(later("cancel_not_recorded"))
        }
    }
}

/// What one HTTP exchange gave.
enum Answer {
    Status {
        status: u16,
        retry_after: Option<Duration>,
    },
    Failed(&'static str),
}

async fn attempt(
    state: &AppState,
    client: &awc::Client,
    message: QueuedMessage,
    checked: bool,
) -> AttemptRecord {
    let attempted_at = now_millis();
    let started = Instant::now();
    let endpoint = message
        .endpoint_id
        .parse::<WebhookEndpointId>()
        .ok()
        .and_then(|id| state.projector.read().webhooks.get(&id).cloned());
    let answer = match endpoint {
        Some(endpoint) if endpoint.status == WebhookStatus::Enabled => {
            if let Some(grounds) = Grounds::of(&message) {
                if let Some(stopped) = recheck(state, &endpoint, &grounds, checked).await {
                    return AttemptRecord {
                        message_id: message.message_id,
                        endpoint_id: message.endpoint_id,
                        attempted_at,
                        status: None,
                        latency_ms: 0,
                        ..stopped
                    };
                }
            }
            send(state, client, &endpoint, &message).await
        }
        _ => {
            // Disabled after the message was queued (or unknown): it is not sent; a partner
            // who enables the endpoint again can redeliver it.
            return AttemptRecord {
                message_id: message.message_id,
                endpoint_id: message.endpoint_id,
                attempted_at,
                status: None,
                error: Some("endpoint_disabled".into()),
                latency_ms: 0,
                outcome: AttemptOutcome::GivenUp,
            };
        }
    };
    let latency = started.elapsed();
    state.metrics.webhooks.observe(latency);
    let (status, error, outcome) = match answer {
        Answer::Status { status, .. } if (200..300).contains(&status) => {
            (Some(status), None, AttemptOutcome::Delivered)
        }
        Answer::Status { status: 410, .. } => (Some(410), None, AttemptOutcome::GivenUp),
        Answer::Status {
            status,
            retry_after,
        } => (
            Some(status),
            None,
            retry(message.attempts + 1, attempted_at, retry_after),
        ),
        Answer::Failed(kind) => (
            None,
            Some(kind.to_owned()),
            retry(message.attempts + 1, attempted_at, None),
        ),
    };
    AttemptRecord {
        message_id: message.message_id,
        endpoint_id: message.endpoint_id,
        attempted_at,
        status,
        error,
        latency_ms: millis(latency),
        outcome,
    }
}

/// What follows the `attempts`-th failed attempt made at `at`.
pub fn retry(attempts: u32, at: i64, retry_after: Option<Duration>) -> AttemptOutcome {
    let Some(step) = RETRY_SCHEDULE.get(attempts.saturating_sub(1) as usize) else {
        return AttemptOutcome::GivenUp;
    };
    // ±20 %: a factor in [0.8, 1.2).
    let spread = f64::from(getrandom::u32().unwrap_or(0)) / f64::from(u32::MAX);
    let jittered = step.mul_f64(0.8 + 0.4 * spread);
    let wait = match retry_after {
        Some(asked) => jittered.max(asked.min(RETRY_AFTER_CAP)),
        None => jittered,
    };
    AttemptOutcome::RetryAt(at + millis(wait))
}

/// `Retry-After`: seconds, or an HTTP date.
fn retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = DateTime::parse_from_rfc2822(value).ok()?;
    (at.with_timezone(&Utc) - now).to_std().ok()
}

async fn send(
    state: &AppState,
    client: &awc::Client,
    endpoint: &WebhookEndpointView,
    message: &QueuedMessage,
) -> Answer {
    let policy = state.config.webhook_targets;
    let Ok(url) = WebhookUrl::parse(endpoint.url.as_str(), policy) else {
        return Answer::Failed("refused_url");
    };
    let address = match url.resolve(policy).await {
        Ok(addresses) => match addresses.first() {
            Some(address) => *address,
            None => return Answer::Failed("unresolved"),
        },
        Err(_) => return Answer::Failed("refused_address"),
    };
    let Ok(body) = body(message) else {
        return Answer::Failed("unreadable_message");
    };
    let keys = match live_keys(state, endpoint).await {
        Ok(keys) if !keys.is_empty() => keys,
        _ => return Answer::Failed("no_signing_key"),
    };
    let timestamp = Utc::now().timestamp();
    let signing: Vec<&WebhookKey> = keys.iter().collect();
    let signature = signature_header(&signing, &message.message_id, timestamp, &body);
    let sent = client
        .post(url.as_str())
        .address(address)
        .insert_header(("content-type", "application/json"))
        .insert_header(("webhook-id", message.message_id.as_str()))
        .insert_header(("webhook-timestamp", timestamp.to_string()))
        .insert_header(("webhook-signature", signature))
        .send_body(body)
        .await;
    match sent {
        Ok(mut response) => {
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .filter(|_| matches!(status, 429 | 502 | 503 | 504))
                .and_then(|v| retry_after(v, Utc::now()));
            let _ = response.body().limit(ANSWER_LIMIT).await;
            Answer::Status {
                status,
                retry_after,
            }
        }
        Err(awc::error::SendRequestError::Timeout) => Answer::Failed("timeout"),
        Err(awc::error::SendRequestError::Connect(_)) => Answer::Failed("connect"),
        Err(_) => Answer::Failed("exchange"),
    }
}

/// The keys that sign now: the endpoint's newest, and the one before it for 24 h after a
/// rotation.
async fn live_keys(
    state: &AppState,
    endpoint: &WebhookEndpointView,
) -> Result<Vec<WebhookKey>, consent_ledger_store::StoreError> {
    let mut live = vec![endpoint.public_key.as_str()];
    if let (Some(previous), Some(rotated_at)) = (&endpoint.previous_public_key, endpoint.rotated_at)
    {
        // The service's clock, the one the rotation was recorded with.
        if state.clock.now() < rotated_at + ROTATION_OVERLAP {
            live.push(previous.as_str());
        }
    }
    if let Some(keys) = state.signing_keys.get(&live) {
        return Ok(keys);
    }
    let secrets = state
        .store
        .webhook_secrets(&endpoint.id.to_string())
        .await?;
    // In the order of `live` (the newest first), as the cache answers.
    let keys: Vec<WebhookKey> = live
        .iter()
        .filter_map(|p| secrets.iter().find(|(public, _)| public == p))
        .filter_map(|(_, secret)| WebhookKey::from_secret(secret).ok())
        .collect();
    state.signing_keys.keep(&keys);
    Ok(keys)
}

/// After attempts are recorded: the metrics, and endpoints to disable — one that answered
/// `410 Gone`, and one whose attempts all failed for [`DeliveryOptions::disable_after`].
async fn after_recorded(state: &AppState, options: &DeliveryOptions, records: Vec<AttemptRecord>) {
    let metrics = &state.metrics.webhooks;
    let mut gone = BTreeSet::new();
    let mut failing = BTreeSet::new();
    for record in &records {
        match record.outcome {
            AttemptOutcome::Delivered => {
                metrics.delivered.fetch_add(1, Relaxed);
            }
            AttemptOutcome::RetryAt(_) => {
                metrics.failed.fetch_add(1, Relaxed);
                failing.insert(record.endpoint_id.clone());
            }
            AttemptOutcome::Cancelled => {
                metrics.cancelled.fetch_add(1, Relaxed);
            }
            AttemptOutcome::GivenUp => {
                metrics.given_up.fetch_add(1, Relaxed);
                if record.status.is_some() || record.error.is_some() {
                    metrics.failed.fetch_add(1, Relaxed);
                }
                if record.status == Some(410) {
                    gone.insert(record.endpoint_id.clone());
                } else if record.error.as_deref() != Some("endpoint_disabled") {
                    failing.insert(record.endpoint_id.clone());
                }
            }
        }
    }
    for endpoint in gone {
        disable(
            state,
            &endpoint,
            DisabledBy::Gone,
            "the receiver answered 410 Gone".into(),
        )
        .await;
    }
    let now = now_millis();
    for endpoint in failing {
        let since = match state.store.failing_since(&endpoint).await {
            Ok(Some(since)) => since,
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "reading an endpoint's failures failed");
                continue;
            }
        };
        if now - since >= millis(options.disable_after) {
            let since = Utc
                .timestamp_millis_opt(since)
                .single()
                .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
                .unwrap_or_default();
            disable(
                state,
                &endpoint,
                DisabledBy::Failing,
                format!("every delivery attempt failed since {since}"),
            )
            .await;
        }
    }
}

/// Disables an endpoint on the worker's behalf (the event's actor is `webhooks`); one
/// disabled meanwhile is left as it is.
async fn disable(state: &AppState, endpoint: &str, by: DisabledBy, why: String) {
    let enabled = endpoint
        .parse::<WebhookEndpointId>()
        .ok()
        .is_some_and(|id| {
            state
                .projector
                .read()
                .webhooks
                .get(&id)
                .is_some_and(|e| e.status == WebhookStatus::Enabled)
        });
    if !enabled {
        return;
    }
    let reason = Reason::parse(why).ok();
    let meta = CommandMeta::new("webhooks", state.ids.new_id().to_string());
    let command = WebhookEndpointCommand::DisableEndpoint { by, reason };
    match state.webhooks.execute(endpoint, command, meta).await {
        Ok(_) => tracing::warn!(%endpoint, ?by, "webhook endpoint disabled"),
        Err(e) => tracing::warn!(%endpoint, error = %e, "disabling a webhook endpoint failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_is_the_specs_with_jitter_and_then_gives_up() {
        for (n, step) in RETRY_SCHEDULE.iter().enumerate() {
            let AttemptOutcome::RetryAt(at) = retry(n as u32 + 1, 0, None) else {
                panic!("attempt {} is retried", n + 1);
            };
            let (low, high) = (millis(step.mul_f64(0.8)), millis(step.mul_f64(1.2)));
            assert!((low..=high).contains(&at), "attempt {}: {at} ms", n + 1);
        }
        assert_eq!(retry(8, 0, None), AttemptOutcome::GivenUp);
    }

    #[test]
    fn retry_after_is_honoured_but_never_sooner_than_the_schedule() {
        let later = retry(1, 0, Some(Duration::from_secs(120)));
        assert_eq!(later, AttemptOutcome::RetryAt(120_000));
        let AttemptOutcome::RetryAt(sooner) = retry(2, 0, Some(Duration::from_secs(1))) else {
            panic!("retried");
        };
        assert!(sooner >= 240_000, "{sooner}");
        let capped = retry(1, 0, Some(Duration::from_secs(10 * 24 * 3600)));
        assert_eq!(capped, AttemptOutcome::RetryAt(millis(RETRY_AFTER_CAP)));
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now = Utc
            .with_ymd_and_hms(2026, 12, 4, 12, 0, 0)
            .single()
            .expect("time");
        assert_eq!(retry_after("30", now), Some(Duration::from_secs(30)));
        assert_eq!(
            retry_after("Fri, 04 Dec 2026 12:01:00 GMT", now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(retry_after("soon", now), None);
    }
}
