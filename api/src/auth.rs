//! The bearer-token extractors (SPEC §2): the `Authorization` header to an authenticated
//! [`Caller`] through [`consent_ledger_app::auth::authenticate`] — checked on the log as
//! committed now, or, for the decision path only, as a [`DecisionCaller`] checked again under
//! the §5.2 fence when its decision is recorded. Both take the request from the caller's rate
//! limit (a decision batch is one request) and, for a token this node does not know, from its
//! address's: over either, 429 before the handler runs, so nothing is recorded.

use std::future::Future;
use std::ops::Deref;
use std::pin::Pin;

use actix_web::{web, FromRequest, HttpRequest};
use consent_ledger_app::auth::{self, Freshness, Token};
use consent_ledger_app::state::AppState;
use consent_ledger_app::AppError;

use crate::problem::ApiError;

/// The authenticated principal making the call, as a handler argument.
#[derive(Debug, Clone)]
pub struct Caller(pub auth::Caller);

impl Deref for Caller {
    type Target = auth::Caller;
    fn deref(&self) -> &auth::Caller {
        &self.0
    }
}

fn bearer(req: &HttpRequest) -> Option<Token> {
    let value = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty())
        .then(|| Token::from(token.trim().to_owned()))
}

/// The caller of a decision route: authenticated on the model as it is, and checked again on
/// the state its decision is made on ([`consent_ledger_app::decide::decide_and_record`]).
#[derive(Debug, Clone)]
pub struct DecisionCaller(pub auth::Caller);

impl Deref for DecisionCaller {
    type Target = auth::Caller;
    fn deref(&self) -> &auth::Caller {
        &self.0
    }
}

type Authenticating = Pin<Box<dyn Future<Output = Result<auth::Caller, ApiError>>>>;

/// The token's principal, its request taken from its rate limit. The client is known by the
/// address of the connection's other end: a proxy in front makes every client that proxy, and
/// an `X-Forwarded-For` the client wrote is never believed.
fn authenticate(req: &HttpRequest, freshness: Freshness) -> Authenticating {
    let token = bearer(req);
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let peer = req.peer_addr().map(|addr| addr.ip());
    Box::pin(async move {
        let (Some(token), Some(state)) = (token, state) else {
            return Err(AppError::Unauthorized.into());
        };
        Ok(auth::authenticate(&state, &token, freshness, peer).await?)
    })
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let caller = authenticate(req, Freshness::Latest);
        Box::pin(async move { Ok(Caller(caller.await?)) })
    }
}

impl FromRequest for DecisionCaller {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let caller = authenticate(req, Freshness::Fenced);
        Box::pin(async move { Ok(DecisionCaller(caller.await?)) })
    }
}
