use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};

use crate::services::LedgerServices;
use crate::webhook::{WebhookEndpointCommand, WebhookEndpointEvent};

/// Why a webhook endpoint command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookEndpointError {
    #[error("this endpoint is already registered")]
    AlreadyRegistered,
    #[error("no such webhook endpoint")]
    NotFound,
    #[error("the endpoint is already disabled")]
    AlreadyDisabled,
    #[error("the endpoint is already enabled")]
    AlreadyEnabled,
    #[error("the endpoint is disabled: enable it first")]
    Disabled,
    #[error("an endpoint receives at least one event type")]
    NoEventTypes,
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookEndpoint {
    registered: bool,
    enabled: bool,
    public_key: String,
}

impl Aggregate for WebhookEndpoint {
    const TYPE: &'static str = "webhook_endpoint";
    type Command = WebhookEndpointCommand;
    type Event = WebhookEndpointEvent;
    type Error = WebhookEndpointError;
    type Services = LedgerServices;

    async fn handle(
        &mut self,
        command: Self::Command,
        services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        let now = services.now();
        let event = match command {
            WebhookEndpointCommand::RegisterEndpoint {
                id,
                partner,
                url,
                event_types,
                description,
                public_key,
            } => {
                if self.registered {
                    return Err(WebhookEndpointError::AlreadyRegistered);
                }
                if event_types.is_empty() {
                    return Err(WebhookEndpointError::NoEventTypes);
                }
                WebhookEndpointEvent::WebhookEndpointRegistered {
                    id,
                    partner,
                    url,
                    event_types,
                    description,
                    public_key,
                    registered_at: now,
                }
            }
            WebhookEndpointCommand::DisableEndpoint { by, reason } => {
                self.exists()?;
                if !self.enabled {
                    return Err(WebhookEndpointError::AlreadyDisabled);
                }
                WebhookEndpointEvent::WebhookEndpointDisabled {
                    by,
                    reason,
                    disabled_at: now,
                }
            }
            WebhookEndpointCommand::EnableEndpoint => {
                self.exists()?;
                if self.enabled {
                    return Err(WebhookEndpointError::AlreadyEnabled);
                }
                WebhookEndpointEvent::WebhookEndpointEnabled { enabled_at: now }
            }
            WebhookEndpointCommand::RotateKey { public_key } => {
                self.exists()?;
                WebhookEndpointEvent::WebhookKeyRotated {
                    public_key,
                    previous_public_key: self.public_key.clone(),
                    rotated_at: now,
                }
            }
            WebhookEndpointCommand::SendTest { message_id } => {
                self.exists()?;
                if !self.enabled {
                    return Err(WebhookEndpointError::Disabled);
                }
                WebhookEndpointEvent::WebhookTestSent {
                    message_id,
                    sent_at: now,
                }
            }
        };
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            WebhookEndpointEvent::WebhookEndpointRegistered { public_key, .. } => {
                self.registered = true;
                self.enabled = true;
                self.public_key = public_key;
            }
            WebhookEndpointEvent::WebhookEndpointDisabled { .. } => self.enabled = false,
            WebhookEndpointEvent::WebhookEndpointEnabled { .. } => self.enabled = true,
            WebhookEndpointEvent::WebhookKeyRotated { public_key, .. } => {
                self.public_key = public_key;
            }
            WebhookEndpointEvent::WebhookTestSent { .. } => {}
        }
    }
}

impl WebhookEndpoint {
    fn exists(&self) -> Result<(), WebhookEndpointError> {
        if self.registered {
            Ok(())
        } else {
            Err(WebhookEndpointError::NotFound)
        }
    }
}
