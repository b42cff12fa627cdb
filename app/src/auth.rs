//! Bearer-token authentication (SPEC §2). Tokens are 256 random bits shown once; the ledger
//! keeps only their SHA-256.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use consent_ledger_domain::values::{PrincipalId, Role};
use sha2::{Digest, Sha256};

use crate::error::AppError;
use crate::state::AppState;

/// A bearer token. Its `Debug` hides the secret so it cannot reach a log by accident.
pub struct Token(String);

impl From<String> for Token {
    fn from(secret: String) -> Self {
        Self(secret)
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(***)")
    }
}

impl Token {
    /// A fresh token from the operating system's randomness.
    pub fn generate() -> anyhow::Result<Self> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
        Ok(Self(format!("cl_{}", URL_SAFE_NO_PAD.encode(bytes))))
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// The hex SHA-256 under which the token is stored.
    pub fn digest(&self) -> String {
        hex::encode(Sha256::digest(self.0.as_bytes()))
    }
}

/// The authenticated principal making the call.
#[derive(Debug, Clone)]
pub struct Caller {
    pub id: PrincipalId,
    pub role: Role,
}

impl Caller {
    /// 403 unless the caller has one of `roles`.
    pub fn require(&self, roles: &[Role]) -> Result<(), AppError> {
        if roles.contains(&self.role) {
            return Ok(());
        }
        let allowed: Vec<&str> = roles.iter().map(Role::as_str).collect();
        Err(AppError::Forbidden(format!(
            "role {} may not do this; allowed: {}",
            self.role,
            allowed.join(", ")
        )))
    }

    /// Privacy officers and regulators read every consent and record (SPEC §2).
    pub fn is_auditor(&self) -> bool {
        matches!(self.role, Role::PrivacyOfficer | Role::Regulator)
    }
}

/// The principal a bearer token belongs to, or [`AppError::Unauthorized`].
#[tracing::instrument(level = "debug", skip_all)]
pub async fn authenticate(state: &AppState, token: &Token) -> Result<Caller, AppError> {
    let digest = token.digest();
    let lookup = |state: &AppState| {
        state
            .projector
            .read()
            .principal_by_token(&digest)
            .map(|p| Caller {
                id: p.id,
                role: p.role,
            })
    };
    if let Some(caller) = lookup(state) {
        return Ok(caller);
    }
    // The principal may have been made a moment ago by another process (the offline
    // `principal create`); read the log once more before refusing.
    state.projector.catch_up().await?;
    lookup(state).ok_or(AppError::Unauthorized)
}
