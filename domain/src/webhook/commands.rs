use crate::values::{EndpointUrl, PartnerId, Reason, WebhookEndpointId};
use crate::webhook::{DisabledBy, WebhookEventType};

#[derive(Debug, Clone, PartialEq)]
pub enum WebhookEndpointCommand {
    /// Register an endpoint whose URL the caller checked (SPEC §13: https, public addresses)
    /// and whose key pair it made: the public half is recorded, the secret kept beside the log.
    RegisterEndpoint {
        id: WebhookEndpointId,
        partner: PartnerId,
        url: EndpointUrl,
        /// Sorted, without repeats, never empty.
        event_types: Vec<WebhookEventType>,
        description: Option<Reason>,
        public_key: String,
    },
    DisableEndpoint {
        by: DisabledBy,
        reason: Option<Reason>,
    },
    EnableEndpoint,
    /// A new key pair; the previous key keeps signing for 24 h beside it.
    RotateKey {
        public_key: String,
    },
    /// Queue a `webhook.test` message (its id) to an enabled endpoint.
    SendTest {
        message_id: String,
    },
}
