//! An operator gives moim a certificate: HTTPS, WSS and TURN/TLS all use
//! it. Every client learns the TURN servers, with its own credentials, from
//! its join response.

mod common;

use std::sync::Arc;
use std::time::Duration;

use moim_client::{Client, ConnectOptions};
use moim_server::tls::TlsSettings;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_participant_is_handed_turn_with_its_own_time_limited_credentials() {
    let server = common::start().await;
    let (alice, _ev) = Client::connect(
        &server.url,
        &common::token("t", "alice"),
        ConnectOptions::default(),
    )
    .await
    .expect("join");
    let ice = &alice.join_response().ice_servers;
    assert_eq!(ice.len(), 1, "one TURN server entry: {ice:?}");
    let urls = &ice[0].urls;
    assert!(
        urls.iter()
            .any(|u| u.starts_with("turn:127.0.0.1:") && u.ends_with("transport=udp")),
        "{urls:?}"
    );
    assert!(
        urls.iter().any(|u| u.ends_with("transport=tcp")),
        "{urls:?}"
    );
    let (expiry, identity) = ice[0]
        .username
        .split_once(':')
        .expect("REST username is expiry:identity");
    assert_eq!(identity, "alice");
    let expiry: u64 = expiry.parse().expect("unix expiry");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    assert!(
        expiry > now && expiry <= now + 48 * 3600,
        "credentials expire, and not too far out"
    );
    assert!(!ice[0].credential.is_empty());
}

/// A server for `localhost` with this certificate on HTTPS and TURN/TLS.
async fn serve_with(settings: TlsSettings) -> common::TestServer {
    common::start_with(|c| {
        c.tls = Some(settings);
        c.domain = Some("localhost".into());
        if let Some(t) = c.turn.as_mut() {
            t.tls_port = 0;
        }
    })
    .await
}

fn self_signed(dir: &std::path::Path) -> (TlsSettings, CertificateDer<'static>) {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("cert");
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    std::fs::write(&cert, certified.cert.pem()).expect("write cert");
    std::fs::write(&key, certified.key_pair.serialize_pem()).expect("write key");
    (
        TlsSettings::Files { cert, key },
        certified.cert.der().clone(),
    )
}

async fn tls_get(
    addr: std::net::SocketAddr,
    trust: CertificateDer<'static>,
    request: &str,
) -> String {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(trust).expect("trust the test cert");
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await.expect("tcp");
    let mut tls = connector
        .connect(ServerName::try_from("localhost").expect("name"), tcp)
        .await
        .expect("TLS handshake with moim's certificate");
    tls.write_all(request.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(2), tls.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_and_turn_over_tls_share_the_configured_certificate() {
    let dir = std::env::temp_dir().join(format!("moim-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp");
    let (settings, der) = self_signed(&dir);
    let mut turn_tls = None;
    let server = serve_with(settings).await;
    let response = tls_get(
        server.http,
        der.clone(),
        "GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with("ok"), "{response}");
    if let Some(addr) = server.turn_tls {
        turn_tls = Some(addr);
        // A TLS handshake on the TURN/TLS port succeeds with the same cert;
        // what follows is STUN, which a plain HTTP request is not.
        let _ = tls_get(addr, der, "x").await;
    }
    assert!(turn_tls.is_some(), "TURN over TLS is listening");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The operator's `certbot renew` replaces the files moim was started
/// with; new connections get the new certificate (HTTPS and TURN/TLS),
/// with no restart. A half-written or broken file changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_renewed_on_disk_is_served_without_a_restart() {
    use common::pebble::served_leaf;
    let dir = std::env::temp_dir().join(format!("moim-tls-reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp");
    let (settings, first) = self_signed(&dir);
    let server = serve_with(settings).await;
    let turn_tls = server.turn_tls.expect("TURN/TLS");
    assert_eq!(
        served_leaf(server.http, "localhost", &first).await,
        Some(first.clone())
    );

    let (_, renewed) = self_signed(&dir);
    let mut seen = None;
    for _ in 0..80 {
        seen = served_leaf(server.http, "localhost", &renewed).await;
        if seen.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(seen, Some(renewed.clone()), "HTTPS serves the renewed file");
    assert_eq!(
        served_leaf(turn_tls, "localhost", &renewed).await,
        Some(renewed.clone()),
        "TURN/TLS serves it too"
    );

    // A key that belongs to another certificate is refused; the renewed
    // certificate stays in service.
    let other = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("cert");
    std::fs::write(dir.join("key.pem"), other.key_pair.serialize_pem()).expect("write");
    tokio::time::sleep(moim_server::tls::RELOAD_CHECK_EVERY * 2).await;
    assert_eq!(
        served_leaf(server.http, "localhost", &renewed).await,
        Some(renewed)
    );
    server.shutdown.now();
    let _ = std::fs::remove_dir_all(&dir);
}
