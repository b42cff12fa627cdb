//! What the handlers' OpenAPI annotations (`#[utoipa::path]`) name besides their own shapes:
//! the shared error answers, and the schemas of query parameters that a view parses itself.
//! [`crate::openapi`] gathers the operations into the document; the routes name these.

use utoipa::ToSchema;

/// The shared error answers: an RFC 9457 problem each, with the headers that status carries.
/// A route's annotation names them (`(status = 401, response = responses::Unauthorized)`); a
/// 409, whose meaning differs per operation, is described where it is answered.
pub mod responses {
    use utoipa::openapi::content::ContentBuilder;
    use utoipa::openapi::header::HeaderBuilder;
    use utoipa::openapi::response::{Response, ResponseBuilder};
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    use utoipa::openapi::{Ref, RefOr};

    use crate::problem::PROBLEM_JSON;

    fn problem(description: &str, headers: &[(&str, &str, Type)]) -> RefOr<Response> {
        let mut response = ResponseBuilder::new().description(description).content(
            PROBLEM_JSON,
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build(),
        );
        for (name, description, kind) in headers {
            let mut schema = ObjectBuilder::new().schema_type(kind.clone());
            if *kind == Type::Integer {
                schema = schema.minimum(Some(0));
            }
            response = response.header(
                *name,
                HeaderBuilder::new()
                    .schema(schema)
                    .description(Some(*description))
                    .build(),
            );
        }
        response.build().into()
    }

    macro_rules! problem_response {
        ($(#[doc = $doc:literal])* $name:ident, $description:literal $(, $header:literal: $kind:ident = $header_doc:literal)* $(,)?) => {
            $(#[doc = $doc])*
            pub struct $name;
            impl<'r> utoipa::ToResponse<'r> for $name {
                fn response() -> (&'r str, RefOr<Response>) {
                    (
                        stringify!($name),
                        problem($description, &[$(($header, $header_doc, Type::$kind)),*]),
                    )
                }
            }
        };
    }

    problem_response!(
        /// 400: the body is not JSON.
        BadRequest,
        "`malformed-json`: the body is not a JSON object. Nothing was recorded."
    );
    problem_response!(
        /// 401: no bearer token, or an unknown one.
        Unauthorized,
        "`unauthorized`: the bearer token is missing or unknown.",
        "WWW-Authenticate": String = "`Bearer`"
    );
    problem_response!(
        /// 403: the caller's role may not do this.
        Forbidden,
        "`forbidden`: the caller's role may not do this; `detail` names the roles that may."
    );
    problem_response!(
        /// 404: no such object, or another tenant's (existence does not leak).
        NotFound,
        "`not-found`: no such object, or one the caller may not see (another tenant's object \
         answers 404, not 403, so its existence does not leak)."
    );
    problem_response!(
        /// 405: the path takes other methods.
        MethodNotAllowed,
        "`method-not-allowed`: the path takes other methods, named in `Allow`.",
        "Allow": String = "the methods this path takes, e.g. `GET, POST`"
    );
    problem_response!(
        /// 408: the body did not arrive in time.
        RequestTimeout,
        "`request-timeout`: the body was not received whole within 10 s. The connection is \
         closed; nothing was recorded."
    );
    problem_response!(
        /// 413: the body is over the limit.
        PayloadTooLarge,
        "`payload-too-large`: the body is over 512 KiB. Nothing was recorded."
    );
    problem_response!(
        /// 422: a field, query parameter, path id or header is invalid.
        UnprocessableEntity,
        "`invalid-field` (a missing, unknown or out-of-range field, query parameter, path id \
         or header; `field` names it) or `idempotency-key-reused` (the `Idempotency-Key` was \
         used for another request). Nothing was recorded."
    );
    problem_response!(
        /// 429: the caller is over its rate limit.
        TooManyRequests,
        "`too-many-requests`: this principal is over its rate limit, or this client address \
         presented too many unknown tokens (`serve --rate-limit`); retry after `Retry-After` \
         seconds. Nothing was recorded.",
        "Retry-After": Integer = "seconds to wait before retrying"
    );
    problem_response!(
        /// 503: the store cannot be reached.
        ServiceUnavailable,
        "`unavailable`: the event store cannot be reached (or the read model is behind). \
         Nothing was recorded; retry after `Retry-After` seconds.",
        "Retry-After": Integer = "seconds to wait before retrying"
    );
}

/// `format` of the access view: JSON (default), CSV or NDJSON.
#[derive(ToSchema)]
#[allow(dead_code)] // documentation only: the view parses the text itself
#[schema(rename_all = "lowercase")]
pub enum AccessFormat {
    Json,
    Csv,
    Ndjson,
}

/// `format` of the DSAR and RoPA views: JSON (default) or CSV.
#[derive(ToSchema)]
#[allow(dead_code)] // documentation only
#[schema(rename_all = "lowercase")]
pub enum ViewFormat {
    Json,
    Csv,
}

/// `outcome` filter: allowed or denied decisions.
#[derive(ToSchema)]
#[allow(dead_code)] // documentation only
#[schema(rename_all = "lowercase")]
pub enum Outcome {
    Allowed,
    Denied,
}
