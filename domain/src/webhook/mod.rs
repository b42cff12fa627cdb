//! Partner webhook endpoints (SPEC §13): where a partner receives its messages, which types,
//! and the public half of the key they are signed with. The secret half never enters the log.

mod aggregate;
mod commands;
mod events;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::values::InvalidValue;

pub use aggregate::{WebhookEndpoint, WebhookEndpointError};
pub use commands::WebhookEndpointCommand;
pub use events::{DisabledBy, WebhookEndpointEvent};

/// The types of message a webhook endpoint may receive (SPEC §13).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum WebhookEventType {
    #[serde(rename = "consent.granted")]
    ConsentGranted,
    #[serde(rename = "consent.revoked")]
    ConsentRevoked,
    #[serde(rename = "consent.expiring")]
    ConsentExpiring,
    #[serde(rename = "consent.expired")]
    ConsentExpired,
    #[serde(rename = "consent_request.approved")]
    ConsentRequestApproved,
    #[serde(rename = "consent_request.denied")]
    ConsentRequestDenied,
    #[serde(rename = "consent_request.expired")]
    ConsentRequestExpired,
    #[serde(rename = "tracking.updated")]
    TrackingUpdated,
    #[serde(rename = "authorization.granted")]
    AuthorizationGranted,
    #[serde(rename = "authorization.revoked")]
    AuthorizationRevoked,
    #[serde(rename = "authorization.objected")]
    AuthorizationObjected,
    #[serde(rename = "webhook.test")]
    WebhookTest,
}

impl WebhookEventType {
    pub const ALL: &'static [WebhookEventType] = &[
        Self::ConsentGranted,
        Self::ConsentRevoked,
        Self::ConsentExpiring,
        Self::ConsentExpired,
        Self::ConsentRequestApproved,
        Self::ConsentRequestDenied,
        Self::ConsentRequestExpired,
        Self::TrackingUpdated,
        Self::AuthorizationGranted,
        Self::AuthorizationRevoked,
        Self::AuthorizationObjected,
        Self::WebhookTest,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            Self::ConsentGranted => "consent.granted",
            Self::ConsentRevoked => "consent.revoked",
            Self::ConsentExpiring => "consent.expiring",
            Self::ConsentExpired => "consent.expired",
            Self::ConsentRequestApproved => "consent_request.approved",
            Self::ConsentRequestDenied => "consent_request.denied",
            Self::ConsentRequestExpired => "consent_request.expired",
            Self::TrackingUpdated => "tracking.updated",
            Self::AuthorizationGranted => "authorization.granted",
            Self::AuthorizationRevoked => "authorization.revoked",
            Self::AuthorizationObjected => "authorization.objected",
            Self::WebhookTest => "webhook.test",
        }
    }
}

impl FromStr for WebhookEventType {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .iter()
            .copied()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| {
                InvalidValue(format!(
                    "unknown value `{s}`; expected one of {}",
                    Self::ALL
                        .iter()
                        .map(|t| t.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })
    }
}

impl fmt::Display for WebhookEventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
