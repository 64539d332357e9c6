//! Where a request's access token comes from.
//!
//! LiveKit's JS SDK passes the token as the `access_token` query parameter;
//! the SDKs built on LiveKit's Rust core (Python, Node, Rust, Unity, agents)
//! send `Authorization: Bearer <jwt>`; server SDKs always use the header.
//! Both are accepted wherever a token is, like LiveKit's server does.

use axum::http::{header, HeaderMap};

/// Why the `Authorization` header could not be read as a bearer token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BearerError {
    #[error("the Authorization header is not valid text")]
    NotText,
    #[error("the Authorization header must be \"Bearer <token>\"")]
    NotBearer,
}

/// The token in `Authorization: Bearer <token>`, if the header is present.
pub fn from_header(headers: &HeaderMap) -> Result<Option<&str>, BearerError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| BearerError::NotText)?.trim();
    // The scheme is case-insensitive (RFC 9110 §11.1).
    let (scheme, token) = value.split_once(' ').ok_or(BearerError::NotBearer)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(BearerError::NotBearer);
    }
    Ok(Some(token))
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(value).expect("test header is valid"),
        );
        h
    }

    #[test]
    fn any_case_of_the_scheme_is_a_bearer_token() {
        for v in ["Bearer abc", "bearer abc", "BEARER  abc ", " Bearer abc"] {
            assert_eq!(from_header(&headers(v)), Ok(Some("abc")), "{v:?}");
        }
    }

    #[test]
    fn no_header_is_no_token() {
        assert_eq!(from_header(&HeaderMap::new()), Ok(None));
    }

    #[test]
    fn other_schemes_and_empty_tokens_are_refused() {
        for v in ["Basic abc", "Bearer", "Bearer  ", "abc", "Bearerabc"] {
            assert_eq!(
                from_header(&headers(v)),
                Err(BearerError::NotBearer),
                "{v:?}"
            );
        }
    }
}
