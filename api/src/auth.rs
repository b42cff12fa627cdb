//! The bearer-token extractor (SPEC §2): the `Authorization` header to an authenticated
//! [`Caller`] through [`consent_ledger_app::auth::authenticate`].

use std::future::Future;
use std::ops::Deref;
use std::pin::Pin;

use actix_web::{web, FromRequest, HttpRequest};
use consent_ledger_app::auth::{self, Token};
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

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let token = bearer(req);
        let state = req.app_data::<web::Data<AppState>>().cloned();
        Box::pin(async move {
            let (Some(token), Some(state)) = (token, state) else {
                return Err(AppError::Unauthorized.into());
            };
            Ok(Caller(auth::authenticate(&state, &token).await?))
        })
    }
}
