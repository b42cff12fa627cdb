//! A tracking update's optional parts as kept (`details`), and what a partner granted some
//! data categories sees of an update (SPEC §14) — the one minimisation a pull and a webhook
//! delivery share.

use consent_ledger_domain::values::{CountryCode, DataCategory};
use consent_ledger_store::tracking::TrackingUpdateRow;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::error::AppError;

/// Where an update happened.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Location {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub postal_code: Option<String>,
    #[schema(value_type = String, example = "DE")]
    pub country: CountryCode,
}

/// Who signed, and a photo.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProofOfDelivery {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signed_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub photo_url: Option<String>,
}

/// How to reach the recipient.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RecipientContact {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
}

/// The optional, personal parts of an update, as kept in `details` and shown to a partner
/// granted their category.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Details {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proof_of_delivery: Option<ProofOfDelivery>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient_contact: Option<RecipientContact>,
}

/// What a partner granted `categories` sees of an update (SPEC §14): `status_events` the
/// status, its time and description; `location` the location; `proof_of_delivery` the proof;
/// `recipient_contact` the contact. Nothing of a category not granted.
pub fn minimised(row: &TrackingUpdateRow, categories: &[DataCategory]) -> Result<Value, AppError> {
    let details: Details = serde_json::from_str(&row.details).map_err(AppError::internal)?;
    let mut out = Map::new();
    let mut put = |name: &str, value: Value| {
        if !value.is_null() {
            out.insert(name.to_owned(), value);
        }
    };
    for category in categories {
        match category {
            DataCategory::StatusEvents => {
                put("status", row.status.clone().into());
                put("occurred_at", row.occurred_at.clone().into());
                put(
                    "description",
                    serde_json::to_value(&details.description).map_err(AppError::internal)?,
                );
            }
            DataCategory::Location => {
                put(
                    "location",
                    serde_json::to_value(&details.location).map_err(AppError::internal)?,
                );
            }
            DataCategory::ProofOfDelivery => {
                put(
                    "proof_of_delivery",
                    serde_json::to_value(&details.proof_of_delivery).map_err(AppError::internal)?,
                );
            }
            DataCategory::RecipientContact => {
                put(
                    "recipient_contact",
                    serde_json::to_value(&details.recipient_contact).map_err(AppError::internal)?,
                );
            }
        }
    }
    Ok(Value::Object(out))
}
