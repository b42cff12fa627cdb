//! A partner's webhook endpoints (SPEC §13): registering one (its URL checked, its key pair
//! made: the public half recorded, the secret kept beside the log), listing and reading them,
//! disabling, enabling, rotating the key. A partner acts on its own endpoints; an admin on any
//! partner's; anyone else is refused, and another partner's endpoint reads as missing.

use consent_ledger_audit::webhook::WebhookKey;
use consent_ledger_domain::values::{
    EndpointUrl, PartnerId, PrincipalId, Reason, Role, WebhookEndpointId,
};
use consent_ledger_domain::webhook::{DisabledBy, WebhookEndpointCommand, WebhookEventType};
use consent_ledger_projections::model::WebhookEndpointView;
use consent_ledger_store::outbox::AttemptCursor;
use consent_ledger_store::WebhookKeyRow;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::error::AppError;
use crate::state::AppState;
use crate::webhooks::target::{TargetError, WebhookUrl};
use crate::write::{self, Answer, WriteContext};

/// Who manages webhook endpoints: a partner its own, an admin any partner's.
pub const MANAGERS: &[Role] = &[Role::Partner, Role::Admin];

/// `{"url","event_types"?,"description"?}`, and `"partner_id"` from an admin.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterEndpoint {
    /// `https`, on a host whose every address is public (checked now and at every delivery).
    #[serde(default)]
    #[schema(required = true, value_type = String)]
    pub url: Option<EndpointUrl>,
    /// The message types to receive; default: all.
    #[serde(default)]
    pub event_types: Option<Vec<WebhookEventType>>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub description: Option<Reason>,
    /// The partner, when an admin registers it; a partner registers for itself only.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Uuid)]
    pub partner_id: Option<PartnerId>,
}

/// `{"reason"?}`: why an endpoint is disabled.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DisableEndpoint {
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub reason: Option<Reason>,
}

/// `{"items":[…]}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointList {
    pub items: Vec<WebhookEndpointView>,
}

/// Checks a URL as SPEC §13 asks, naming the field `url` when it is refused: scheme and
/// literal addresses, then every address its host resolves to.
pub async fn checked_url(state: &AppState, url: &EndpointUrl) -> Result<WebhookUrl, AppError> {
    let policy = state.config.webhook_targets;
    let refused = |e: TargetError| AppError::invalid("url", e.to_string());
    let target = WebhookUrl::parse(url.as_str(), policy).map_err(refused)?;
    target.resolve(policy).await.map_err(refused)?;
    Ok(target)
}

/// `POST /v1/webhook-endpoints`.
#[tracing::instrument(level = "debug", skip_all, fields(caller = %caller.id))]
pub async fn register(
    state: &AppState,
    caller: &Caller,
    input: RegisterEndpoint,
    context: WriteContext,
) -> Result<(WebhookEndpointView, Answer), AppError> {
    caller.require(MANAGERS)?;
    let partner = match (caller.role, input.partner_id) {
        (Role::Partner, None) => caller.id.as_partner(),
        (Role::Partner, Some(_)) => {
            return Err(AppError::invalid(
                "partner_id",
                "a partner registers endpoints for itself; leave partner_id out",
            ))
        }
        (_, Some(partner)) => {
            let model = state.projector.read();
            let known = model
                .principals
                .get(&PrincipalId::from(partner))
                .is_some_and(|p| p.role == Role::Partner);
            if !known {
                return Err(AppError::invalid("partner_id", "no partner with this id"));
            }
            partner
        }
        (_, None) => {
            return Err(AppError::invalid(
                "partner_id",
                "name the partner the endpoint is for",
            ))
        }
    };
    let url = input
        .url
        .ok_or_else(|| AppError::invalid("url", "name the https URL to deliver to"))?;
    let mut event_types = input
        .event_types
        .unwrap_or_else(|| WebhookEventType::ALL.to_vec());
    event_types.sort();
    event_types.dedup();
    if event_types.is_empty() {
        return Err(AppError::invalid(
            "event_types",
            "name at least one event type, or leave event_types out for all",
        ));
    }
    checked_url(state, &url).await?;
    let key = WebhookKey::generate().map_err(AppError::internal)?;
    let id = WebhookEndpointId::from_uuid(state.ids.new_id());
    let command = WebhookEndpointCommand::RegisterEndpoint {
        id,
        partner,
        url,
        event_types,
        description: input.description,
        public_key: key.public(),
    };
    let (events, answer) = write::record(
        state,
        context,
        |mut meta| async {
            meta.webhook_key = Some(WebhookKeyRow {
                endpoint_id: id.to_string(),
                public_key: key.public(),
                secret: key.secret(),
            });
            Ok(state
                .webhooks
                .execute(&id.to_string(), command, meta)
                .await?)
        },
        |events, _| Ok(events.to_vec()),
    )
    .await?;
    Ok((written(state, &events).await?, answer))
}

/// The answer of a write: the endpoint as its stream stood right after the write's events —
/// for a replay by `Idempotency-Key`, the first answer, not the endpoint as it is now.
async fn written(
    state: &AppState,
    events: &[consent_ledger_store::StoredEvent],
) -> Result<WebhookEndpointView, AppError> {
    let (Some(first), Some(last)) = (events.first(), events.last()) else {
        return Err(AppError::internal(anyhow::anyhow!(
            "a webhook write recorded nothing"
        )));
    };
    let stream = state
        .store
        .read_stream(&first.stream_type, &first.stream_id)
        .await?;
    WebhookEndpointView::as_of(&stream, last.position).ok_or_else(|| {
        AppError::internal(anyhow::anyhow!(
            "endpoint {} cannot be read back",
            first.stream_id
        ))
    })
}

/// The endpoint `id` if the caller may manage it; another partner's is not found.
fn visible(
    state: &AppState,
    caller: &Caller,
    id: WebhookEndpointId,
) -> Result<WebhookEndpointView, AppError> {
    caller.require(MANAGERS)?;
    let endpoint = state
        .projector
        .read()
        .webhooks
        .get(&id)
        .cloned()
        .ok_or_else(AppError::not_found)?;
    if !caller.sees_partner(endpoint.partner_id) {
        return Err(AppError::not_found());
    }
    Ok(endpoint)
}

/// `GET /v1/webhook-endpoints[?partner_id=]`: a partner's own; an admin's all, or one partner's.
pub fn list(
    state: &AppState,
    caller: &Caller,
    partner: Option<PartnerId>,
) -> Result<EndpointList, AppError> {
    caller.require(MANAGERS)?;
    let only = caller.partner_filter(partner);
    let items = state
        .projector
        .read()
        .webhooks
        .values()
        .filter(|e| only.is_none_or(|p| e.partner_id == p))
        .cloned()
        .collect();
    Ok(EndpointList { items })
}

/// `GET /v1/webhook-endpoints/{id}`.
pub fn get(
    state: &AppState,
    caller: &Caller,
    id: WebhookEndpointId,
) -> Result<WebhookEndpointView, AppError> {
    visible(state, caller, id)
}

/// What a write to an existing endpoint does.
pub enum Change {
    Disable(DisableEndpoint),
    Enable,
    RotateKey,
}

/// `POST /v1/webhook-endpoints/{id}/disable|enable|rotate-key`.
#[tracing::instrument(level = "debug", skip_all, fields(caller = %caller.id))]
pub async fn change(
    state: &AppState,
    caller: &Caller,
    id: WebhookEndpointId,
    change: Change,
    context: WriteContext,
) -> Result<(WebhookEndpointView, Answer), AppError> {
    visible(state, caller, id)?;
    let (command, key) = match change {
        Change::Disable(input) => (
            WebhookEndpointCommand::DisableEndpoint {
                by: DisabledBy::Request,
                reason: input.reason,
            },
            None,
        ),
        Change::Enable => (WebhookEndpointCommand::EnableEndpoint, None),
        Change::RotateKey => {
            let key = WebhookKey::generate().map_err(AppError::internal)?;
            (
                WebhookEndpointCommand::RotateKey {
                    public_key: key.public(),
                },
                Some(WebhookKeyRow {
                    endpoint_id: id.to_string(),
                    public_key: key.public(),
                    secret: key.secret(),
                }),
            )
        }
    };
    let (events, answer) = write::record(
        state,
        context,
        |mut meta| async {
            meta.webhook_key = key;
            Ok(state
                .webhooks
                .execute(&id.to_string(), command, meta)
                .await?)
        },
        |events, _| Ok(events.to_vec()),
    )
    .await?;
    Ok((written(state, &events).await?, answer))
}

/// `{"message_id","position"}`: the `webhook.test` message queued, and the event recording it.
#[derive(Debug, Serialize, ToSchema)]
pub struct TestSent {
    /// The `webhook-id` the receiver gets; follow it in the endpoint's deliveries.
    pub message_id: String,
    #[schema(value_type = u64)]
    pub position: consent_ledger_store::Position,
}

/// `POST /v1/webhook-endpoints/{id}/test`: queues a `webhook.test` message to the endpoint
/// (whatever types it receives), recorded as `WebhookTestSent`; a disabled endpoint is 409.
#[tracing::instrument(level = "debug", skip_all, fields(caller = %caller.id))]
pub async fn send_test(
    state: &AppState,
    caller: &Caller,
    id: WebhookEndpointId,
    context: WriteContext,
) -> Result<(TestSent, Answer), AppError> {
    let endpoint = visible(state, caller, id)?;
    let occurred_at = state.clock.now();
    let data = serde_json::json!({
        "endpoint_id": id,
        "partner_id": endpoint.partner_id,
        "message": "a test message from consent-ledger: verify its signature with the endpoint's public key",
    });
    let message = crate::webhooks::outbox::message_to(
        state,
        id,
        WebhookEventType::WebhookTest,
        occurred_at,
        &data,
    )?;
    let message_id = message.message_id.clone();
    let command = WebhookEndpointCommand::SendTest {
        message_id: message_id.clone(),
    };
    write::record(
        state,
        context,
        |mut meta| async move {
            meta.outbox = vec![message];
            Ok(state
                .webhooks
                .execute(&id.to_string(), command, meta)
                .await?)
        },
        |events, _| {
            let event = events.first().ok_or_else(|| {
                AppError::internal(anyhow::anyhow!("a test message recorded nothing"))
            })?;
            let sent: consent_ledger_domain::webhook::WebhookEndpointEvent =
                event.decode().map_err(AppError::internal)?;
            match sent {
                consent_ledger_domain::webhook::WebhookEndpointEvent::WebhookTestSent {
                    message_id,
                    ..
                } => Ok(TestSent {
                    message_id,
                    position: event.position,
                }),
                _ => Err(AppError::internal(anyhow::anyhow!(
                    "a test message recorded another event"
                ))),
            }
        },
    )
    .await
}

/// `?cursor=&limit=` of the deliveries list.
#[derive(Debug, Clone)]
pub struct DeliveryPage {
    /// The previous page's `next_cursor`; none for the first page.
    pub cursor: Option<String>,
    /// 1 to 1,000; default 100.
    pub limit: Option<u32>,
}

/// One delivery attempt.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryAttemptView {
    pub message_id: String,
    #[schema(value_type = String)]
    pub event_type: String,
    /// 1 for the first attempt; a retry or a redelivery counts on.
    pub attempt: u32,
    pub attempted_at: chrono::DateTime<chrono::Utc>,
    /// The receiver's HTTP status; absent when no answer came.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Why no answer came (or why nothing was sent): `timeout`, `connect`, `exchange`,
    /// `refused_url`, `refused_address`, `unresolved`, `endpoint_disabled`, …
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub latency_ms: i64,
    /// When the message is attempted next; absent once it is delivered or given up.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The message now: `pending`, `delivered` or `failed` (given up).
    pub message_state: String,
}

/// `{"items":[…],"next_cursor"?}`, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryList {
    pub items: Vec<DeliveryAttemptView>,
    /// Present when the page is full: pass it as `cursor` for the next (older) page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

fn time_of(millis: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_millis(millis).unwrap_or_default()
}

/// `GET /v1/webhook-endpoints/{id}/deliveries`: every attempt, newest first.
pub async fn deliveries(
    state: &AppState,
    caller: &Caller,
    id: WebhookEndpointId,
    page: DeliveryPage,
) -> Result<DeliveryList, AppError> {
    visible(state, caller, id)?;
    let limit = match page.limit {
        None => 100,
        Some(n @ 1..=1000) => n,
        Some(_) => return Err(AppError::invalid("limit", "between 1 and 1000")),
    };
    let cursor = match &page.cursor {
        None => AttemptCursor::start(),
        Some(text) => AttemptCursor::decode(text)
            .ok_or_else(|| AppError::invalid("cursor", "the next_cursor of a previous page"))?,
    };
    let attempts = state
        .store
        .deliveries(&id.to_string(), &cursor, limit)
        .await?;
    let next_cursor = (attempts.len() == limit as usize)
        .then(|| attempts.last().map(|a| AttemptCursor::after(a).encode()))
        .flatten();
    Ok(DeliveryList {
        items: attempts
            .into_iter()
            .map(|a| DeliveryAttemptView {
                message_id: a.message_id,
                event_type: a.event_type,
                attempt: a.attempt,
                attempted_at: time_of(a.attempted_at),
                status: a.status,
                error: a.error,
                latency_ms: a.latency_ms,
                next_attempt_at: a.next_attempt_at.map(time_of),
                message_state: a.state,
            })
            .collect(),
        next_cursor,
    })
}

/// `{"message_id","endpoint_id","message_state":"pending"}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Redelivery {
    pub message_id: String,
    #[schema(value_type = String, format = Uuid)]
    pub endpoint_id: WebhookEndpointId,
    pub message_state: String,
}

/// `POST /v1/webhook-deliveries/{message_id}/redeliver`: the message is attempted again at
/// once, with the same `webhook-id` and body (a new timestamp and signature); a failed one
/// resumes the retry schedule where it stopped. Another partner's message is 404; a message
/// of a disabled endpoint is 409 until it is enabled, and a cancelled delivery (SPEC §14) is
/// 409 for good.
pub async fn redeliver(
    state: &AppState,
    caller: &Caller,
    message_id: &str,
) -> Result<Redelivery, AppError> {
    caller.require(MANAGERS)?;
    let valid = message_id.len() == 36
        && message_id.starts_with("msg_")
        && message_id[4..].bytes().all(|b| b.is_ascii_hexdigit());
    if !valid {
        return Err(AppError::invalid(
            "message_id",
            "a message id: msg_ and 32 hex digits",
        ));
    }
    let queued = state
        .store
        .message_state(message_id)
        .await?
        .ok_or_else(AppError::not_found)?;
    let endpoint_id: WebhookEndpointId = queued
        .endpoint_id
        .parse()
        .map_err(|_| AppError::not_found())?;
    let endpoint = visible(state, caller, endpoint_id)?;
    if endpoint.status != consent_ledger_projections::model::WebhookStatus::Enabled {
        return Err(AppError::conflict(
            "endpoint-disabled",
            "the endpoint is disabled: enable it first",
        ));
    }
    if queued.state == "cancelled" {
        return Err(AppError::conflict(
            "delivery-cancelled",
            "the delivery was cancelled: a revocation, suspension or expiry it rested on has \
             committed, so it is never sent",
        ));
    }
    let now = chrono::Utc::now().timestamp_millis();
    if !state.store.redeliver(message_id, now).await? {
        return Err(AppError::not_found());
    }
    Ok(Redelivery {
        message_id: message_id.to_owned(),
        endpoint_id,
        message_state: "pending".into(),
    })
}
