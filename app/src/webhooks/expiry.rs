//! `consent.expiring` and `consent.expired` (SPEC §13): no request causes them, so the
//! housekeeping loop records `ConsentExpiryNoticed` on the consent's stream with the messages
//! in its commit — once each per consent (the aggregate refuses a second), so a crash or two
//! nodes sweeping at once never send one twice nor lose one. Only a partner with an endpoint
//! subscribed to the type is told; the others' consents record nothing.

use chrono::{DateTime, Utc};
use consent_ledger_domain::consent::ConsentCommand;
use consent_ledger_domain::webhook::WebhookEventType;
use consent_ledger_projections::model::ConsentView;
use consent_ledger_store::cqrs::CommandMeta;

use crate::state::AppState;
use crate::webhooks::outbox::{consent_data, messages};

/// Tells partners of their consents that end within the notice period
/// (`serve --expiring-notice-days`) or have ended, each once.
#[tracing::instrument(skip_all)]
pub async fn notice_expiries(state: &AppState) {
    let now = state.clock.now();
    let due: Vec<(ConsentView, bool)> = {
        let model = state.projector.read();
        model
            .consents
            .values()
            .filter(|c| c.revocation.is_none())
            .filter_map(|c| {
                let told = model.expiry_notices.get(&c.id).copied();
                let expired = due(now, c.valid_until?, state.config.expiring_notice, told)?;
                Some((c.clone(), expired))
            })
            .collect()
    };
    let mut noticed = 0;
    for (consent, expired) in due {
        match notice(state, &consent, expired, now).await {
            Ok(true) => noticed += 1,
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(consent = %consent.id, error = %e, "expiry notice failed; retried next sweep")
            }
        }
    }
    if noticed > 0 {
        tracing::info!(noticed, "consent expiry notices queued");
        if let Err(e) = state.projector.catch_up().await {
            tracing::warn!(error = %e, "catching up after expiry notices failed");
        }
    }
}

/// Which notice a consent ending at `until` is due at `now`: `Some(true)` expired, `Some(false)`
/// expiring, given what its partner was told (`told`: `Some(expired)`).
pub fn due(
    now: DateTime<Utc>,
    until: DateTime<Utc>,
    lead: chrono::Duration,
    told: Option<bool>,
) -> Option<bool> {
    if now >= until {
        (told != Some(true)).then_some(true)
    } else if now >= until - lead {
        told.is_none().then_some(false)
    } else {
        None
    }
}

/// Records one notice with its messages; `false` when the partner has no endpoint for it.
async fn notice(
    state: &AppState,
    consent: &ConsentView,
    expired: bool,
    now: DateTime<Utc>,
) -> Result<bool, crate::AppError> {
    let kind = if expired {
        WebhookEventType::ConsentExpired
    } else {
        WebhookEventType::ConsentExpiring
    };
    let data = consent_data(consent);
    let outbox = messages(state, consent.partner_id, kind, now, &data)?;
    if outbox.is_empty() {
        return Ok(false);
    }
    let mut meta = CommandMeta::new("system", state.ids.new_id().to_string());
    meta.outbox = outbox;
    state
        .consents
        .execute(
            &consent.id.to_string(),
            ConsentCommand::NoticeExpiry { expired },
            meta,
        )
        .await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone};

    #[test]
    fn each_notice_is_due_once_in_its_window() {
        let until = Utc
            .with_ymd_and_hms(2026, 12, 31, 0, 0, 0)
            .single()
            .expect("time");
        let lead = Duration::days(7);
        assert_eq!(due(until - Duration::days(8), until, lead, None), None);
        assert_eq!(
            due(until - Duration::days(7), until, lead, None),
            Some(false)
        );
        assert_eq!(
            due(until - Duration::days(1), until, lead, Some(false)),
            None
        );
        assert_eq!(due(until, until, lead, Some(false)), Some(true));
        assert_eq!(
            due(until, until, lead, None),
            Some(true),
            "late: only expired"
        );
        assert_eq!(
            due(until + Duration::days(3), until, lead, Some(true)),
            None
        );
    }
}
