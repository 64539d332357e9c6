//! The join request of `/rtc` and `/rtc/v1`: the URL query as axum's
//! `Query` extractor parses it, the token taken from it or from the
//! `Authorization` header (`http::signal_token`), the v0 parameters
//! (`ClientProfile::from_query`) and the v1 `join_request` parameter
//! (base64url, WrappedJoinRequest, gzip, JoinRequest, ClientInfo).
#![no_main]

use std::collections::HashMap;

use axum::extract::Query;
use axum::http::{header, HeaderMap, HeaderValue, Uri};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use libfuzzer_sys::fuzz_target;
use moim_server::fuzzing::{signal_token, v0_params, v1_params, ClientProfile};

fn params(q: &HashMap<String, String>, headers: &HeaderMap) {
    if let Ok(token) = signal_token(q, headers) {
        assert!(!token.is_empty());
    }
    let v0 = v0_params(q);
    assert!(!v0.single_pc);
    assert_eq!(v0.client, ClientProfile::from_query(q));
    if let Ok(v1) = v1_params(q) {
        assert!(v1.single_pc);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else { return };
    let mut headers = HeaderMap::new();
    let rest = if sel & 1 == 1 {
        // An Authorization header line first.
        let (line, rest) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &[][..]),
        };
        if let Ok(v) = HeaderValue::from_bytes(line) {
            headers.insert(header::AUTHORIZATION, v);
        }
        rest
    } else {
        rest
    };
    if sel & 2 == 0 {
        // The query string as it arrives.
        let mut uri = b"/rtc/v1?".to_vec();
        uri.extend_from_slice(rest);
        let Ok(uri) = Uri::try_from(uri) else { return };
        let Ok(Query(q)) = Query::<HashMap<String, String>>::try_from_uri(&uri) else { return };
        params(&q, &headers);
    } else {
        // The bytes of a WrappedJoinRequest, as a client would encode them.
        let mut q = HashMap::new();
        q.insert("join_request".to_string(), B64.encode(rest));
        q.insert("access_token".to_string(), "t".to_string());
        params(&q, &headers);
    }
});
