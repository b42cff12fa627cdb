//! Personal data in events (SPEC §12, docs/adr/0008). A tracking number, a recipient reference
//! and every free text about a parcel or a data subject are [`Personal`]: the domain holds the
//! value while it is known; the store seals it (a salted commitment in the leaf, the value and
//! salt in a deletable table) and opens it again on reading, and once an erasure has deleted
//! the opening the field reads as [`Personal::Erased`].
//!
//! [`pointers`] names, per event type, where in the payload those fields are: the one list the
//! sealing, the openings and the bundles go by.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A personal value as an event holds it: known, or erased (its opening deleted).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Personal<T> {
    Known(T),
    Erased,
}

impl<T> Personal<T> {
    /// The value, unless erased.
    pub fn known(&self) -> Option<&T> {
        match self {
            Self::Known(value) => Some(value),
            Self::Erased => None,
        }
    }

    pub fn into_known(self) -> Option<T> {
        match self {
            Self::Known(value) => Some(value),
            Self::Erased => None,
        }
    }
}

impl<T> From<T> for Personal<T> {
    fn from(value: T) -> Self {
        Self::Known(value)
    }
}

/// A known value serialises as itself (the store then seals it); an erased one as
/// `{"erased":true}`, which is how views show it (SPEC §12).
impl<T: Serialize> Serialize for Personal<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Known(value) => value.serialize(serializer),
            Self::Erased => Erased { erased: true }.serialize(serializer),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Erased {
    erased: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Commitment {
    #[allow(dead_code)]
    commitment: String,
}

// The variants' contents are only matched on shape, never read.
#[allow(dead_code)]
#[derive(Deserialize)]
#[serde(untagged)]
enum Repr<T> {
    Known(T),
    /// A commitment left unopened: its opening was erased.
    Sealed(Commitment),
    Erased(Erased),
}

/// The value itself (an opened field, or a field of a leaf written before commitments), or a
/// commitment whose opening is gone, or `{"erased":true}`.
impl<'de, T: Deserialize<'de>> Deserialize<'de> for Personal<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(match Repr::deserialize(deserializer)? {
            Repr::Known(value) => Self::Known(value),
            Repr::Sealed(_) | Repr::Erased(_) => Self::Erased,
        })
    }
}

#[cfg(feature = "openapi")]
impl<T: utoipa::PartialSchema> utoipa::PartialSchema for Personal<T> {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
        OneOfBuilder::new()
            .item(T::schema())
            .item(
                ObjectBuilder::new()
                    .property("erased", ObjectBuilder::new().schema_type(Type::Boolean))
                    .required("erased")
                    .description(Some("The value was erased (SPEC §12).")),
            )
            .into()
    }
}

#[cfg(feature = "openapi")]
impl<T: utoipa::PartialSchema> utoipa::ToSchema for Personal<T> {}

/// The JSON pointers (RFC 6901), into an event's payload, of the personal fields of events of
/// `event_type` (SPEC §12). Everything else in a payload stays in clear.
pub fn pointers(event_type: &str) -> &'static [&'static str] {
    match event_type {
        "ShipmentRegistered" => &[
            "/ShipmentRegistered/tracking_number",
            "/ShipmentRegistered/recipient_ref",
        ],
        "TrackingAccessDenied" => &["/TrackingAccessDenied/tracking_number"],
        "ConsentRevoked" => &["/ConsentRevoked/reason"],
        "ConsentRequestSubmitted" => &["/ConsentRequestSubmitted/justification"],
        "ConsentRequestDenied" => &["/ConsentRequestDenied/reason"],
        "PersonalDataErased" => &["/PersonalDataErased/reason"],
        "ShipperObjected" => &["/ShipperObjected/reason"],
        _ => &[],
    }
}

/// The schema version of events of `event_type`: 2 where [`pointers`] names fields (their
/// leaves hold commitments), 1 otherwise.
pub fn schema_version(event_type: &str) -> &'static str {
    if pointers(event_type).is_empty() {
        "1"
    } else {
        "2"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::values::TrackingNumber;

    #[test]
    fn a_personal_field_reads_its_value_a_commitment_or_an_erasure() {
        let known: Personal<TrackingNumber> = serde_json::from_str("\"JJD1\"").unwrap();
        assert_eq!(
            known,
            Personal::Known(TrackingNumber::parse("JJD1").unwrap())
        );
        let sealed: Personal<TrackingNumber> =
            serde_json::from_str(r#"{"commitment":"AAAA"}"#).unwrap();
        assert_eq!(sealed, Personal::Erased);
        let erased: Personal<TrackingNumber> = serde_json::from_str(r#"{"erased":true}"#).unwrap();
        assert_eq!(erased, Personal::Erased);
        assert_eq!(
            serde_json::to_string(&erased).unwrap(),
            r#"{"erased":true}"#
        );
        assert_eq!(serde_json::to_string(&known).unwrap(), "\"JJD1\"");
        // An invalid value is no erasure: it stays an error.
        assert!(serde_json::from_str::<Personal<TrackingNumber>>("\"\"").is_err());
    }
}
