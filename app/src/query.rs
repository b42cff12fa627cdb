//! Reading request input that every transport shares: query strings (the HTTP query and the
//! command line's `--query`) that name the parameter at fault, ids, and paging.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::str::FromStr;

use chrono::{DateTime, Datelike, FixedOffset, Utc};
use consent_ledger_domain::values::{PartnerId, ShipperId};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};

use crate::error::AppError;

/// Query parameters, refusing any name not in `known`.
pub struct QueryParams(HashMap<String, String>);

impl QueryParams {
    pub fn parse(query: &str, known: &[&str]) -> Result<Self, AppError> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query)
            .map_err(|e| AppError::invalid("query", format!("malformed query string: {e}")))?;
        let mut map = HashMap::new();
        for (k, v) in pairs {
            if !known.contains(&k.as_str()) {
                return Err(AppError::invalid(
                    k.clone(),
                    format!(
                        "unknown query parameter; expected one of {}",
                        known.join(", ")
                    ),
                ));
            }
            map.insert(k, v);
        }
        Ok(Self(map))
    }

    /// The parameter's text, if present.
    pub fn raw(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// The parameter parsed with `T::from_str`, if present.
    pub fn get<T>(&self, name: &str) -> Result<Option<T>, AppError>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        self.0
            .get(name)
            .map(|v| {
                v.parse::<T>()
                    .map_err(|e| AppError::invalid(name, e.to_string()))
            })
            .transpose()
    }
}

/// `t` if RFC 3339 can write it in UTC: its years have four digits, 0000 to 9999. A time an
/// offset carries past either end (`9999-12-31T23:59:59-14:00` is in the year 10000 in UTC)
/// would be stored and answered back as `+10000-…`, which no RFC 3339 reader takes.
pub fn writable_time(t: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    if (0..=9999).contains(&t.year()) {
        Ok(t)
    } else {
        Err("must lie between the years 0000 and 9999 in UTC".to_owned())
    }
}

/// An RFC 3339 time from request text (a query parameter, a command-line option), in UTC.
pub fn rfc3339_time(text: &str) -> Result<DateTime<Utc>, String> {
    let t = DateTime::<FixedOffset>::parse_from_rfc3339(text)
        .map_err(|e| format!("not an RFC 3339 time ({e}), e.g. 2026-03-01T12:00:00Z"))?;
    writable_time(t.with_timezone(&Utc))
}

/// serde's `deserialize_with` for an optional time of a request body, refused (naming the
/// field) unless [`writable_time`].
pub fn optional_writable_time<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<DateTime<Utc>>, D::Error> {
    Option::<DateTime<Utc>>::deserialize(deserializer)?
        .map(writable_time)
        .transpose()
        .map_err(serde::de::Error::custom)
}

/// Parses a path segment id, naming the parameter when it is not one.
pub fn path_id<T>(value: &str, name: &str) -> Result<T, AppError>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    value
        .parse()
        .map_err(|e: T::Err| AppError::invalid(name, e.to_string()))
}

/// One page of a list, with the cursor for the next page.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `after` to get the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_after: Option<String>,
}

pub const DEFAULT_PAGE: usize = 100;
pub const MAX_PAGE: usize = 1000;

/// The query every list takes: `partner_id`, `shipper_id`, `status`, `limit`, `after`.
pub struct ListQuery<S, K> {
    pub partner: Option<PartnerId>,
    pub shipper: Option<ShipperId>,
    pub status: Option<S>,
    pub limit: usize,
    pub after: Option<K>,
}

impl<S: PartialEq, K> ListQuery<S, K> {
    /// Whether an item of this partner, shipper and status passes the query's filters.
    pub fn selects(&self, partner: PartnerId, shipper: ShipperId, status: S) -> bool {
        self.partner.is_none_or(|p| partner == p)
            && self.shipper.is_none_or(|s| shipper == s)
            && self.status.as_ref().is_none_or(|s| status == *s)
    }
}

impl<S: DeserializeOwned, K: FromStr> ListQuery<S, K>
where
    K::Err: std::fmt::Display,
{
    /// Parses the query; `statuses` lists the accepted status values for the error message.
    pub fn parse(query: &str, statuses: &[&str]) -> Result<Self, AppError> {
        let q = QueryParams::parse(
            query,
            &["partner_id", "shipper_id", "status", "limit", "after"],
        )?;
        let status: Option<String> = q.get("status")?;
        let status = status
            .map(|s| {
                let known = statuses.contains(&s.as_str());
                serde_json::from_value::<S>(serde_json::Value::String(s.clone()))
                    .ok()
                    .filter(|_| known)
                    .ok_or_else(|| {
                        AppError::invalid(
                            "status",
                            format!(
                                "unknown value `{s}`; expected one of {}",
                                statuses.join(", ")
                            ),
                        )
                    })
            })
            .transpose()?;
        Ok(Self {
            partner: q.get("partner_id")?,
            shipper: q.get("shipper_id")?,
            status,
            limit: page_size(q.get("limit")?)?,
            after: q.get("after")?,
        })
    }
}

/// One page of `map` after the cursor: `select` filters and renders, `key` gives the cursor.
pub fn page<'a, K, V, T>(
    map: &'a BTreeMap<K, V>,
    after: Option<K>,
    limit: usize,
    select: impl FnMut(&'a V) -> Option<T>,
    key: impl Fn(&T) -> K,
) -> Page<T>
where
    K: Ord + Copy + std::fmt::Display,
{
    let range = match after {
        Some(after) => map.range((Bound::Excluded(after), Bound::Unbounded)),
        None => map.range(..),
    };
    let mut items: Vec<T> = range
        .map(|(_, v)| v)
        .filter_map(select)
        .take(limit + 1)
        .collect();
    let next_after = (items.len() > limit).then(|| {
        items.truncate(limit);
        items.last().map(|t| key(t).to_string()).unwrap_or_default()
    });
    Page { items, next_after }
}

/// Clamps a requested page size.
pub fn page_size(limit: Option<usize>) -> Result<usize, AppError> {
    match limit {
        None => Ok(DEFAULT_PAGE),
        Some(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
        Some(_) => Err(AppError::invalid(
            "limit",
            format!("must be between 1 and {MAX_PAGE}"),
        )),
    }
}
