//! Query parameters, parsed by hand so that every bad value is a 400 naming the parameter, and
//! unknown parameters are refused (a typo must not silently widen a query).

use std::str::FromStr;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use jiff::Timestamp;

use crate::ApiError;

/// The query string's pairs.
#[derive(Debug, Default)]
pub(crate) struct Params(Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let q = parts.uri.query().unwrap_or("");
        Ok(Params(
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect(),
        ))
    }
}

impl Params {
    /// Refuses parameters other than `allowed` and repeated ones.
    pub fn only(&self, allowed: &[&str]) -> Result<&Self, ApiError> {
        for (i, (k, _)) in self.0.iter().enumerate() {
            if !allowed.contains(&k.as_str()) {
                return Err(ApiError::invalid(format!(
                    "unknown parameter `{k}` (expected one of: {})",
                    allowed.join(", ")
                )));
            }
            if self.0[..i].iter().any(|(p, _)| p == k) {
                return Err(ApiError::invalid(format!(
                    "parameter `{k}` given twice (use a comma-separated list)"
                )));
            }
        }
        Ok(self)
    }

    fn raw(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// One value.
    pub fn one<T: FromStr>(&self, name: &str) -> Result<Option<T>, ApiError>
    where
        T::Err: std::fmt::Display,
    {
        self.raw(name)
            .map(|v| {
                v.parse::<T>()
                    .map_err(|e| ApiError::invalid(format!("parameter `{name}`: {e}")))
            })
            .transpose()
    }

    /// A comma-separated list (`None` when absent).
    pub fn list<T: FromStr>(&self, name: &str) -> Result<Option<Vec<T>>, ApiError>
    where
        T::Err: std::fmt::Display,
    {
        let Some(v) = self.raw(name) else {
            return Ok(None);
        };
        v.split(',')
            .map(|s| {
                s.trim()
                    .parse::<T>()
                    .map_err(|e| ApiError::invalid(format!("parameter `{name}`: {e}")))
            })
            .collect::<Result<Vec<T>, _>>()
            .map(Some)
    }

    /// An RFC 3339 time.
    pub fn time(&self, name: &str) -> Result<Option<Timestamp>, ApiError> {
        self.raw(name)
            .map(|v| {
                v.parse::<Timestamp>().map_err(|_| {
                    ApiError::invalid(format!(
                        "parameter `{name}`: expected an RFC 3339 time such as 2027-01-15T08:00:00Z, got {v:?}"
                    ))
                })
            })
            .transpose()
    }

    /// `limit`: 1..=max, `default` when absent.
    pub fn limit(&self, default: u32, max: u32) -> Result<u32, ApiError> {
        match self.raw("limit") {
            None => Ok(default),
            Some(v) => match v.parse::<u32>() {
                Ok(n) if (1..=max).contains(&n) => Ok(n),
                _ => Err(ApiError::invalid(format!(
                    "parameter `limit`: expected a number from 1 to {max}, got {v:?}"
                ))),
            },
        }
    }
}

/// Checks `from < to` when both are given.
pub(crate) fn range(
    from: Option<Timestamp>,
    to: Option<Timestamp>,
) -> Result<(Option<Timestamp>, Option<Timestamp>), ApiError> {
    if let (Some(f), Some(t)) = (from, to)
        && f >= t
    {
        return Err(ApiError::invalid("parameter `to` must be after `from`"));
    }
    Ok((from, to))
}
