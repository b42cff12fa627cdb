//! Console sessions (SPEC §15): a principal signs in once with its token and gets a session,
//! known by a random cookie value of which only the SHA-256 is kept, with its own CSRF token.
//! Every request checks the session's caller again exactly as a token is checked (a rotated
//! token or a suspension ends it: [`Caller::still_holds`]), so the console enforces §2 as the
//! API does — it calls the same use cases with the same caller.
//!
//! Sessions live in this node's memory: a restart signs everyone out, and behind a balancer a
//! console sticks to one node. They end after [`IDLE`] without a request and at [`LIFETIME`].

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};

use consent_ledger_projections::ReadModel;

use crate::caller::Caller;
use crate::error::AppError;

/// A session unused this long ends.
pub const IDLE: Duration = Duration::from_secs(30 * 60);
/// A session ends this long after sign-in, used or not.
pub const LIFETIME: Duration = Duration::from_secs(12 * 60 * 60);
/// Most sessions a node keeps; the oldest end first beyond it.
const MOST: usize = 10_000;

/// A signed-in console user.
#[derive(Debug, Clone)]
pub struct Session {
    pub caller: Caller,
    /// The token every form of this session carries (SPEC §15: CSRF-protected forms).
    pub csrf: String,
    started: Instant,
    last_seen: Instant,
}

/// What a sign-in hands to the browser: the cookie value (shown once, never kept) and the
/// session's CSRF token.
#[derive(Debug)]
pub struct SignedIn {
    pub cookie: String,
    pub csrf: String,
    pub caller: Caller,
}

#[derive(Debug, Default)]
pub struct Sessions {
    by_digest: Mutex<HashMap<String, Session>>,
}

/// 32 random bytes, URL-safe base64.
pub fn random_text() -> Result<String, AppError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| AppError::internal(anyhow::anyhow!("no randomness: {e}")))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

fn digest(cookie: &str) -> String {
    hex::encode(Sha256::digest(cookie.as_bytes()))
}

/// Whether two secrets are equal, in time independent of where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |diff, (x, y)| diff | (x ^ y))
            == 0
}

impl Sessions {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.by_digest.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Opens a session for `caller`, authenticated by its token as the API authenticates one
    /// ([`crate::auth::authenticate`]).
    pub fn open(&self, caller: Caller) -> Result<SignedIn, AppError> {
        let cookie = random_text()?;
        let csrf = random_text()?;
        let now = Instant::now();
        let mut map = self.map();
        map.retain(|_, s| s.alive(now));
        if map.len() >= MOST {
            if let Some(oldest) = map
                .iter()
                .min_by_key(|(_, s)| s.started)
                .map(|(k, _)| k.clone())
            {
                map.remove(&oldest);
            }
        }
        map.insert(
            digest(&cookie),
            Session {
                caller: caller.clone(),
                csrf: csrf.clone(),
                started: now,
                last_seen: now,
            },
        );
        Ok(SignedIn {
            cookie,
            csrf,
            caller,
        })
    }

    /// The live session of this cookie, its caller still holding on `model` (the model as it
    /// is now); `None` (and the session ended) otherwise.
    pub fn session(&self, model: &ReadModel, cookie: &str) -> Option<Session> {
        let key = digest(cookie);
        let now = Instant::now();
        let mut map = self.map();
        let session = map.get_mut(&key)?;
        if !session.alive(now) || !session.caller.still_holds(model) {
            map.remove(&key);
            return None;
        }
        session.last_seen = now;
        Some(session.clone())
    }

    /// Ends the session of this cookie.
    pub fn sign_out(&self, cookie: &str) {
        self.map().remove(&digest(cookie));
    }
}

impl Session {
    fn alive(&self, now: Instant) -> bool {
        now.duration_since(self.last_seen) < IDLE && now.duration_since(self.started) < LIFETIME
    }
}
