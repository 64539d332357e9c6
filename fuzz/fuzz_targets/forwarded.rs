//! `X-Forwarded-For` and `Forwarded` from a trusted proxy: any header text
//! yields an address, and it is one the request named or the peer itself.
#![no_main]

use std::net::IpAddr;

use axum::http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use moim_server::forwarded::{client_ip, parse_trusted};

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else { return };
    let peer = IpAddr::from([127, 0, 0, 1]);
    let trusted = [
        parse_trusted("127.0.0.1").expect("addr"),
        parse_trusted("10.0.0.0/8").expect("net"),
    ];
    let mut headers = HeaderMap::new();
    for part in rest.split(|&b| b == b'\n') {
        let Ok(value) = HeaderValue::from_bytes(part) else { continue };
        let name = if sel & 1 == 0 { "x-forwarded-for" } else { "forwarded" };
        headers.append(name, value);
    }
    let client = client_ip(peer, &headers, &trusted);
    let text = String::from_utf8_lossy(rest).to_ascii_lowercase();
    assert!(client == peer || text.contains(&client.to_string().to_ascii_lowercase()) || client.is_ipv6());
    let _ = parse_trusted(&String::from_utf8_lossy(rest));
});
