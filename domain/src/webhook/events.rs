use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};

use crate::values::{EndpointUrl, PartnerId, Reason, WebhookEndpointId};
use crate::webhook::WebhookEventType;

/// Who or what disabled an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum DisabledBy {
    /// Its partner or an admin.
    Request,
    /// The receiver answered `410 Gone`.
    Gone,
    /// Its messages kept failing for 5 days.
    Failing,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum WebhookEndpointEvent {
    WebhookEndpointRegistered {
        id: WebhookEndpointId,
        partner: PartnerId,
        url: EndpointUrl,
        event_types: Vec<WebhookEventType>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        description: Option<Reason>,
        /// `whpk_…`: what the partner verifies signatures with.
        public_key: String,
        registered_at: DateTime<Utc>,
    },
    WebhookEndpointDisabled {
        by: DisabledBy,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<Reason>,
        disabled_at: DateTime<Utc>,
    },
    WebhookEndpointEnabled {
        enabled_at: DateTime<Utc>,
    },
    WebhookKeyRotated {
        public_key: String,
        previous_public_key: String,
        rotated_at: DateTime<Utc>,
    },
    /// A `webhook.test` message was queued (who asked is the event's actor).
    WebhookTestSent {
        message_id: String,
        sent_at: DateTime<Utc>,
    },
}

impl DomainEvent for WebhookEndpointEvent {
    fn event_type(&self) -> String {
        match self {
            Self::WebhookEndpointRegistered { .. } => "WebhookEndpointRegistered",
            Self::WebhookEndpointDisabled { .. } => "WebhookEndpointDisabled",
            Self::WebhookEndpointEnabled { .. } => "WebhookEndpointEnabled",
            Self::WebhookKeyRotated { .. } => "WebhookKeyRotated",
            Self::WebhookTestSent { .. } => "WebhookTestSent",
        }
        .into()
    }
    fn event_version(&self) -> String {
        "1".into()
    }
}
