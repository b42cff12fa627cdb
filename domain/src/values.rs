//! Newtypes for every id and value of SPEC §3. Each has a private field and one fallible
//! constructor, and deserializes through it, so nothing downstream holds an invalid value and a
//! bad request body names the field that was wrong.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::country::is_iso3166_alpha2;

/// Why a value was rejected. The message is lowercase and says what is expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidValue(pub String);

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[serde(try_from = "String", into = "String")]
        #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
        pub struct $name(Uuid);

        impl $name {
            /// Parses a hyphenated UUID, the only form the API accepts.
            pub fn parse(s: &str) -> Result<Self, InvalidValue> {
                Uuid::try_parse(s)
                    .map(Self)
                    .map_err(|_| InvalidValue(format!("`{s}` is not a UUID")))
            }
            /// Wraps an id minted by an [`crate::IdGenerator`] or read back from the store.
            pub fn from_uuid(id: Uuid) -> Self {
                Self(id)
            }
            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }
        impl TryFrom<String> for $name {
            type Error = InvalidValue;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                Self::parse(&s)
            }
        }
        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0.to_string()
            }
        }
        impl FromStr for $name {
            type Err = InvalidValue;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

uuid_id!(
    /// Any authenticated principal (SPEC §2).
    PrincipalId
);
uuid_id!(
    /// A principal of role `partner`; its id is its principal id.
    PartnerId
);
uuid_id!(
    /// A principal of role `shipper`; its id is its principal id.
    ShipperId
);
uuid_id!(ShipmentId);
uuid_id!(ConsentId);
uuid_id!(ConsentRequestId);
uuid_id!(
    /// A partner's webhook endpoint (SPEC §13).
    WebhookEndpointId
);
uuid_id!(
    /// A partner's subscription to tracking updates (SPEC §14).
    SubscriptionId
);
uuid_id!(
    /// A data processing agreement in the carrier's register (SPEC §16).
    DpaId
);
uuid_id!(
    /// A carrier's authorization of a tracking intermediary (SPEC §16).
    AuthorizationId
);

impl From<PartnerId> for PrincipalId {
    fn from(id: PartnerId) -> Self {
        Self(id.0)
    }
}
impl From<ShipperId> for PrincipalId {
    fn from(id: ShipperId) -> Self {
        Self(id.0)
    }
}
impl PrincipalId {
    pub fn as_partner(self) -> PartnerId {
        PartnerId(self.0)
    }
    pub fn as_shipper(self) -> ShipperId {
        ShipperId(self.0)
    }
}

macro_rules! text_value {
    ($(#[doc = $doc:literal])* $name:ident, max $max:literal, pattern $pattern:expr, $check:expr) => {
        text_value!($(#[doc = $doc])* $name, max $max, pattern $pattern, $check, |s| s);
    };
    ($(#[doc = $doc:literal])* $name:ident, max $max:literal, pattern $pattern:expr, $check:expr, $normalise:expr) => {
        $(#[doc = $doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// The most characters a value may have.
            pub const MAX_CHARS: usize = $max;

            pub fn parse(s: impl Into<String>) -> Result<Self, InvalidValue> {
                let normalise: fn(String) -> String = $normalise;
                let s: String = normalise(s.into());
                let check: fn(&str) -> Result<(), String> = $check;
                check(&s).map_err(InvalidValue)?;
                Ok(Self(s))
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        // By hand rather than derived: utoipa's derive cannot put a length on a newtype. The
        // schema states what `parse` accepts: 1 to MAX_CHARS characters (JSON Schema counts
        // code points, as `chars()` does), of the characters `pattern` allows.
        #[cfg(feature = "openapi")]
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                let doc: &[&str] = &[$($doc),*];
                let description = doc.iter().map(|l| l.trim()).collect::<Vec<_>>().join(" ");
                utoipa::openapi::schema::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .description(Some(description))
                    .min_length(Some(1))
                    .max_length(Some($max))
                    .pattern(Some($pattern))
                    .into()
            }
        }
        #[cfg(feature = "openapi")]
        impl utoipa::ToSchema for $name {}
        impl FromStr for $name {
            type Err = InvalidValue;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }
        impl TryFrom<String> for $name {
            type Error = InvalidValue;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                Self::parse(s)
            }
        }
        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

/// The pattern of free text (names, references, reasons): not blank, and no control character
/// (Unicode category Cc, as `char::is_control`). ECMA-262 syntax, as OpenAPI 3.1 asks.
#[cfg(feature = "openapi")]
const FREE_TEXT_PATTERN: &str = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$";

fn bounded(s: &str, what: &str, max: usize) -> Result<(), String> {
    let n = s.chars().count();
    if s.trim().is_empty() {
        return Err(format!("{what} must not be empty"));
    }
    if n > max {
        return Err(format!(
            "{what} is {n} characters long; at most {max} are allowed"
        ));
    }
    if s.chars().any(char::is_control) {
        return Err(format!("{what} must not contain control characters"));
    }
    Ok(())
}

fn token_chars(s: &str, what: &str, max: usize, extra: &[char]) -> Result<(), String> {
    bounded(s, what, max)?;
    match s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || extra.contains(c)))
    {
        Some(c) => Err(format!(
            "{what} may hold only ASCII letters, digits and {extra:?}; found {c:?}"
        )),
        None => Ok(()),
    }
}

text_value!(
    /// A carrier code such as `DHL` or `ups-de`: 1–32 ASCII letters, digits, `-` or `_`.
    /// Stored upper-cased so that `dhl` and `DHL` name one carrier.
    CarrierCode,
    max 32,
    pattern "^[A-Za-z0-9_-]+$",
    |s| token_chars(s, "carrier code", CarrierCode::MAX_CHARS, &['-', '_']),
    |s| s.to_ascii_uppercase()
);

text_value!(
    /// A carrier's tracking number: 1–64 ASCII letters, digits or `-`. Stored upper-cased:
    /// carriers treat `jjd0001` and `JJD0001` as one parcel.
    TrackingNumber,
    max 64,
    pattern "^[A-Za-z0-9-]+$",
    |s| token_chars(s, "tracking number", TrackingNumber::MAX_CHARS, &['-']),
    |s| s.to_ascii_uppercase()
);

text_value!(
    /// An opaque key the carrier uses for data-subject requests: 1–128 ASCII letters, digits
    /// or `-_.:/+=`. Never a raw e-mail address or a name, so `@` and spaces are refused.
    RecipientRef,
    max 128,
    pattern "^[A-Za-z0-9_.:/+=-]+$",
    |s| token_chars(s, "recipient reference", RecipientRef::MAX_CHARS, &['-', '_', '.', ':', '/', '+', '='])
);

text_value!(
    /// A webhook endpoint's URL as registered, 1–2,048 characters without control characters;
    /// whether it may receive messages (https, public addresses) is the caller's check, which
    /// needs name resolution (SPEC §13).
    EndpointUrl,
    max 2048,
    pattern FREE_TEXT_PATTERN,
    |s| bounded(s, "url", EndpointUrl::MAX_CHARS)
);

text_value!(
    /// A person-readable name of a principal or partner, 1–200 characters, not blank, without
    /// control characters.
    DisplayName,
    max 200,
    pattern FREE_TEXT_PATTERN,
    |s| bounded(s, "name", DisplayName::MAX_CHARS)
);

text_value!(
    /// The id of an Art. 28 data processing agreement, 1–100 characters, not blank, without
    /// control characters.
    DpaRef,
    max 100,
    pattern FREE_TEXT_PATTERN,
    |s| bounded(s, "DPA reference", DpaRef::MAX_CHARS)
);

text_value!(
    /// Free text given for a revocation, a denial or a request, 1–2,000 characters, not
    /// blank, without control characters.
    Reason,
    max 2000,
    pattern FREE_TEXT_PATTERN,
    |s| bounded(s, "text", Reason::MAX_CHARS)
);

/// An ISO 3166-1 alpha-2 country code, upper case (`DE`, `US`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CountryCode([u8; 2]);

// By hand: the schema lists the codes `parse` accepts, as an enum.
#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for CountryCode {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some(
                "An ISO 3166-1 alpha-2 country code, upper case (`DE`, `US`); also `XK` (Kosovo).",
            ))
            .enum_values(Some(crate::country::codes()))
            .examples(["DE"])
            .into()
    }
}
#[cfg(feature = "openapi")]
impl utoipa::ToSchema for CountryCode {}

impl CountryCode {
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        match s.as_bytes() {
            [a, b] if is_iso3166_alpha2(s) => Ok(Self([*a, *b])),
            _ => Err(InvalidValue(format!(
                "`{s}` is not an ISO 3166-1 alpha-2 country code (two upper-case letters, e.g. DE)"
            ))),
        }
    }
    pub fn as_str(&self) -> &str {
        // INVARIANT: built only from an ASCII code in the ISO list.
        std::str::from_utf8(&self.0).unwrap_or("??")
    }
}
impl TryFrom<String> for CountryCode {
    type Error = InvalidValue;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}
impl From<CountryCode> for String {
    fn from(c: CountryCode) -> String {
        c.as_str().to_owned()
    }
}
impl fmt::Display for CountryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

macro_rules! closed_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            pub fn as_str(&self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }
        impl FromStr for $name {
            type Err = InvalidValue;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(InvalidValue(format!(
                        "unknown value `{s}`; expected one of {}",
                        [$($text),+].join(", ")
                    ))),
                }
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

closed_enum!(
    /// SPEC §2 roles.
    Role {
        Admin => "admin",
        Shipper => "shipper",
        Partner => "partner",
        Gateway => "gateway",
        PrivacyOfficer => "privacy_officer",
        Regulator => "regulator",
    }
);

closed_enum!(
    /// The kind of third party a partner is (SPEC §2).
    PartnerKind {
        Marketplace => "marketplace",
        PaymentProvider => "payment_provider",
        FraudPrevention => "fraud_prevention",
        Bnpl => "bnpl",
        Insurer => "insurer",
        Returns => "returns",
        Notifications => "notifications",
        CustomerService => "customer_service",
        LogisticsPartner => "logistics_partner",
        TrackingIntermediary => "tracking_intermediary",
    }
);

closed_enum!(
    /// Why a partner reads tracking data (SPEC §3).
    Purpose {
        ProofOfShipping => "proof_of_shipping",
        PaymentRisk => "payment_risk",
        FraudPrevention => "fraud_prevention",
        BnplFinancing => "bnpl_financing",
        InsuranceClaim => "insurance_claim",
        ReturnsManagement => "returns_management",
        ShipmentNotifications => "shipment_notifications",
        CustomerService => "customer_service",
        SupplyChainVisibility => "supply_chain_visibility",
    }
);

closed_enum!(
    /// What part of the tracking data a partner may read (SPEC §3).
    DataCategory {
        StatusEvents => "status_events",
        Location => "location",
        ProofOfDelivery => "proof_of_delivery",
        RecipientContact => "recipient_contact",
    }
);

closed_enum!(
    /// The GDPR Art. 6 ground a consent rests on.
    LegalBasis {
        Consent => "consent",
        Contract => "contract",
        LegitimateInterests => "legitimate_interests",
        LegalObligation => "legal_obligation",
    }
);

closed_enum!(
    /// What a partner is to the carrier under its DPA (GDPR Art. 28 and 26).
    DpaRole {
        Processor => "processor",
        IndependentController => "independent_controller",
        JointController => "joint_controller",
    }
);

closed_enum!(
    /// How personal data may leave the EEA under a DPA (GDPR Chapter V).
    TransferMechanism {
        Adequacy => "adequacy",
        Scc => "scc",
        Bcr => "bcr",
    }
);

closed_enum!(
    /// Whether a partner may receive grants and decisions.
    PartnerStatus {
        Active => "active",
        Suspended => "suspended",
    }
);

/// A non-empty set of values without repeats, kept sorted so that two equal sets compare and
/// serialize the same way.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(value_type = Vec<T>))]
#[serde(
    try_from = "Vec<T>",
    into = "Vec<T>",
    bound = "T: Ord + Clone + Serialize + serde::de::DeserializeOwned"
)]
pub struct NonEmptySet<T: Ord + Clone>(Vec<T>);

impl<T: Ord + Clone> NonEmptySet<T> {
    pub fn new(mut items: Vec<T>) -> Result<Self, InvalidValue> {
        if items.is_empty() {
            return Err(InvalidValue("must name at least one value".into()));
        }
        items.sort();
        items.dedup();
        Ok(Self(items))
    }
    pub fn iter(&self) -> std::slice::Iter<'_, T> {
        self.0.iter()
    }
    pub fn as_slice(&self) -> &[T] {
        &self.0
    }
    pub fn contains(&self, item: &T) -> bool {
        self.0.binary_search(item).is_ok()
    }
    /// True when every value of `self` is also in `other`.
    pub fn is_subset_of(&self, other: &Self) -> bool {
        self.0.iter().all(|x| other.contains(x))
    }
}
impl<T: Ord + Clone> TryFrom<Vec<T>> for NonEmptySet<T> {
    type Error = InvalidValue;
    fn try_from(items: Vec<T>) -> Result<Self, Self::Error> {
        Self::new(items)
    }
}
impl<T: Ord + Clone> From<NonEmptySet<T>> for Vec<T> {
    fn from(s: NonEmptySet<T>) -> Vec<T> {
        s.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn country_codes_are_checked_against_the_iso_list() {
        assert!(CountryCode::parse("DE").is_ok());
        assert!(CountryCode::parse("de").is_err());
        assert!(CountryCode::parse("XX").is_err());
        assert!(CountryCode::parse("DEU").is_err());
    }

    #[test]
    fn tracking_numbers_are_bounded() {
        assert!(TrackingNumber::parse("JJD0001").is_ok());
        assert!(TrackingNumber::parse("x".repeat(65)).is_err());
        assert!(TrackingNumber::parse("").is_err());
        assert!(TrackingNumber::parse("a b").is_err());
    }

    #[test]
    fn recipient_refs_refuse_email_addresses() {
        assert!(RecipientRef::parse("crm:4711").is_ok());
        assert!(RecipientRef::parse("jane@example.com").is_err());
    }

    #[test]
    fn sets_are_non_empty_sorted_and_deduplicated() {
        assert!(NonEmptySet::<Purpose>::new(vec![]).is_err());
        let s = NonEmptySet::new(vec![
            DataCategory::Location,
            DataCategory::StatusEvents,
            DataCategory::Location,
        ])
        .unwrap();
        assert_eq!(
            s.as_slice(),
            &[DataCategory::StatusEvents, DataCategory::Location]
        );
    }

    #[test]
    fn enums_reject_unknown_values_by_name() {
        let err = serde_json::from_str::<Purpose>("\"marketing\"").unwrap_err();
        assert!(err.to_string().contains("marketing"));
        assert_eq!("bnpl".parse::<PartnerKind>(), Ok(PartnerKind::Bnpl));
    }
}
