//! Access tokens: `KeyStore::verify` on any text, on correctly signed JWTs
//! whose header and claims JSON are the input (so claim parsing is reached
//! past the signature check), and the `Authorization: Bearer` header as the
//! Twirp API reads it.
#![no_main]

use std::time::{Duration, SystemTime};

use axum::http::{header, HeaderMap, HeaderValue};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use libfuzzer_sys::fuzz_target;
use moim_proto::token::{mint, KeyStore, VideoGrant};
use moim_server::fuzzing::{authenticate, bearer_token};
use sha2::Sha256;

const KEY: &str = "devkey";
const SECRET: &str = "fuzz-secret";

fn sign(header: &[u8], claims: &[u8]) -> String {
    let signing_input = format!("{}.{}", B64.encode(header), B64.encode(claims));
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("any key length");
    mac.update(signing_input.as_bytes());
    format!("{signing_input}.{}", B64.encode(mac.finalize().into_bytes()))
}

fuzz_target!(|data: &[u8]| {
    let keys = KeyStore::new([(KEY.to_string(), SECRET.to_string())]);
    let Some((&sel, rest)) = data.split_first() else { return };
    match sel % 3 {
        0 => {
            let text = String::from_utf8_lossy(rest);
            let _ = keys.verify(&text);
        }
        1 => {
            // "<header JSON>\0<claims JSON>", or claims alone under HS256.
            let (head, claims) = match rest.iter().position(|&b| b == 0) {
                Some(i) => (&rest[..i], &rest[i + 1..]),
                None => (&br#"{"alg":"HS256","typ":"JWT"}"#[..], rest),
            };
            let token = sign(head, claims);
            if let Ok(c) = keys.verify(&token) {
                // Only a token of the known key, with an expiry, is valid.
                assert_eq!(c.iss, KEY);
                assert!(c.exp > 0);
            }
        }
        _ => {
            let Ok(value) = HeaderValue::from_bytes(rest) else { return };
            let mut headers = HeaderMap::new();
            headers.insert(header::AUTHORIZATION, value);
            if let Ok(Some(t)) = bearer_token(&headers) {
                assert!(!t.is_empty() && t.len() < rest.len());
            }
            let _ = authenticate(&keys, &headers);
        }
    }
    // A freshly minted token for the input as identity always verifies.
    if sel == 0xFF {
        let who = String::from_utf8_lossy(rest);
        let t = mint(KEY, SECRET, &who, VideoGrant::default(), Duration::from_secs(60), SystemTime::now());
        assert_eq!(keys.verify(&t).map(|c| c.sub), Ok(who.into_owned()));
    }
});
