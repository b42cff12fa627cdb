//! Bearer-token authentication (SPEC §2). Tokens are 256 random bits shown once; the ledger
//! keeps only their SHA-256.

use std::net::IpAddr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use consent_ledger_domain::values::PrincipalId;
use consent_ledger_projections::ReadModel;
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

pub use crate::caller::Caller;

/// How fresh the state a token is checked on must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// The log as committed now, on any node: a rotation or suspension whose answer has
    /// returned refuses the old token at once. Costs one read of the log's head.
    Latest,
    /// The model as it is. Only for the decision path, which checks the caller again on the
    /// state it decides on, under the §5.2 fence ([`crate::decide::decide_and_record`]).
    Fenced,
}

/// The caller a token digest authenticates on `model`, if the token is current and its
/// principal active.
fn caller_on(model: &ReadModel, digest: &str) -> Option<Caller> {
    let p = model.principal_by_token(digest)?;
    let caller = Caller {
        id: p.id,
        role: p.role,
        credential_at: p.credential_at,
    };
    caller.still_holds(model).then_some(caller)
}

/// The principal a bearer token belongs to, or [`AppError::Unauthorized`]: an unknown, rotated
/// or suspended principal's token alike (SPEC §2). `peer` is the client's IP address as the
/// transport saw it on the connection (never a header the client wrote), if it knows one.
///
/// A token this model has not admitted costs one indexed read of the credentials table and
/// nothing more unless it is real, so unknown tokens cannot make the node replay the log; with
/// a rate limit, `peer` may make only so many such reads a second ([`AppError::RateLimited`]).
/// The principal's own request is taken from its bucket once it is authenticated, so a
/// rotated or suspended token cannot spend its principal's requests.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn authenticate(
    state: &AppState,
    token: &Token,
    freshness: Freshness,
    peer: Option<IpAddr>,
) -> Result<Caller, AppError> {
    let digest = token.digest();
    if freshness == Freshness::Fenced {
        // The decision path: one look at the model for a token it holds (the decision checks
        // the caller again under the fence).
        let held = caller_on(&state.projector.read(), &digest);
        if let Some(caller) = held {
            state.rate_limits.principal(caller.id)?;
            return Ok(caller);
        }
    }
    let known = state.projector.read().principal_by_token(&digest).is_some();
    if known {
        if freshness == Freshness::Latest {
            state.projector.catch_up().await?;
        }
    } else {
        state.rate_limits.unknown_token(peer)?;
        let Some(issued) = state.store.credential(&digest).await? else {
            return Err(AppError::Unauthorized);
        };
        let id = PrincipalId::parse(&issued.principal_id).map_err(|_| AppError::Unauthorized)?;
        // Issued after the state this model holds (a moment ago, or on another node): catch up
        // to its issue first.
        if state.projector.read().next_position() <= issued.issued_at {
            state.projector.catch_up().await?;
        }
        state
            .projector
            .admit_credential(id, &digest, issued.issued_at.get());
    }
    let caller = caller_on(&state.projector.read(), &digest).ok_or(AppError::Unauthorized)?;
    state.rate_limits.principal(caller.id)?;
    Ok(caller)
}
