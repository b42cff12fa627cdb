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
    if caller.role == Role::Partner && endpoint.partner_id != caller.id.as_partner() {
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
    let only = match caller.role {
        Role::Partner => Some(caller.id.as_partner()),
        _ => partner,
    };
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
