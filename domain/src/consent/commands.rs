use chrono::{DateTime, Utc};

use crate::terms::ConsentScope;
use crate::values::{
    ConsentId, ConsentRequestId, DataCategory, DpaRef, LegalBasis, NonEmptySet, PartnerId,
    PrincipalId, Purpose, Reason, ShipperId,
};

#[derive(Debug, Clone, PartialEq)]
pub enum ConsentCommand {
    /// Grant a partner access to tracking data. `dpa_ref` defaults to the partner's DPA and
    /// `valid_from` to now.
    GrantConsent {
        id: ConsentId,
        shipper: ShipperId,
        partner: PartnerId,
        scope: ConsentScope,
        purposes: NonEmptySet<Purpose>,
        data_categories: NonEmptySet<DataCategory>,
        legal_basis: LegalBasis,
        dpa_ref: Option<DpaRef>,
        valid_from: Option<DateTime<Utc>>,
        valid_until: Option<DateTime<Utc>>,
        origin_request: Option<ConsentRequestId>,
    },
    /// Withdraw the consent (GDPR Art. 7(3)). Terminal.
    RevokeConsent {
        revoked_by: PrincipalId,
        reason: Reason,
    },
    /// Record that the partner is told the consent is about to expire (`expired: false`,
    /// within the notice period before `valid_until`) or has expired (`expired: true`): once
    /// each, so that the message it carries (SPEC §13) is queued exactly once.
    NoticeExpiry { expired: bool },
}
