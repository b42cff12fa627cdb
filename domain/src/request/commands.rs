use chrono::{DateTime, Duration, Utc};

use crate::request::Narrowing;
use crate::terms::ConsentScope;
use crate::values::{
    ConsentId, ConsentRequestId, DataCategory, DpaRef, LegalBasis, NonEmptySet, PartnerId, Purpose,
    Reason, ShipperId,
};

#[derive(Debug, Clone, PartialEq)]
pub enum ConsentRequestCommand {
    /// A partner asks a shipper for a consent. The request expires `ttl` after submission.
    SubmitConsentRequest {
        id: ConsentRequestId,
        partner: PartnerId,
        shipper: ShipperId,
        scope: ConsentScope,
        purposes: NonEmptySet<Purpose>,
        data_categories: NonEmptySet<DataCategory>,
        legal_basis: LegalBasis,
        dpa_ref: Option<DpaRef>,
        valid_from: Option<DateTime<Utc>>,
        valid_until: Option<DateTime<Utc>>,
        justification: Reason,
        ttl: Duration,
    },
    /// The shipper approves; `consent_id` names the consent granted for it.
    ApproveConsentRequest {
        consent_id: ConsentId,
        narrowing: Narrowing,
    },
    DenyConsentRequest {
        reason: Reason,
    },
    WithdrawConsentRequest,
    /// Close a pending request whose time has run out.
    ExpireConsentRequest,
}
