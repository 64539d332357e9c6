//! An operator runs `moim serve --acme --domain meet.moim.test` and gets a
//! certificate from an ACME CA, with nothing else to set up: moim answers
//! the CA's check itself, serves the certificate on HTTPS and TURN/TLS,
//! renews it before it runs out without a restart, and after a restart
//! serves the cached one without ordering again. The CA is Let's
//! Encrypt's test server, Debian's `pebble`, validating for real over
//! loopback.

mod common;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use common::pebble::{free_port, openssl_verifies, served_leaf, Pebble};
use moim_server::tls::{AcmeSettings, ChallengeKind, TlsSettings};

const DOMAIN: &str = "meet.moim.test";

fn acme(pebble: &Pebble, challenge: ChallengeKind, http_port: Option<u16>) -> AcmeSettings {
    AcmeSettings {
        domains: vec![DOMAIN.to_string()],
        email: Some("ops@moim.test".to_string()),
        directory: pebble.directory.clone(),
        cache_dir: pebble.dir.join("moim-acme"),
        challenge,
        http_listen: http_port.map(|p| (IpAddr::from([127, 0, 0, 1]), p).into()),
        directory_ca: Some(pebble.api_ca.clone()),
    }
}

async fn serve(port: u16, settings: AcmeSettings) -> common::TestServer {
    capture_logs();
    common::start_with(|c| {
        c.port = port;
        c.domain = Some(DOMAIN.to_string());
        c.tls = Some(TlsSettings::Acme(settings));
        if let Some(t) = c.turn.as_mut() {
            t.tls_port = 0;
        }
    })
    .await
}

/// moim's log, kept for the test that reads what an operator is told
/// (and printed, so a failing test shows why an order failed).
static LOG: std::sync::Mutex<Vec<u8>> = std::sync::Mutex::new(Vec::new());

struct Tee;

impl std::io::Write for Tee {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut log) = LOG.lock() {
            log.extend_from_slice(buf);
        }
        print!("{}", String::from_utf8_lossy(buf));
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture_logs() {
    let _ = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(|| Tee)
        .try_init();
}

fn log_text() -> String {
    LOG.lock()
        .map(|l| String::from_utf8_lossy(&l).into_owned())
        .unwrap_or_default()
}

/// Waits until `addr` presents a certificate for DOMAIN that chains to
/// pebble's root, and is not `other`.
async fn certificate_other_than(
    pebble: &Pebble,
    addr: std::net::SocketAddr,
    other: Option<&[u8]>,
    within: Duration,
) -> Vec<u8> {
    let root = pebble.issuing_root().await;
    let deadline = Instant::now() + within;
    loop {
        if let Some(leaf) = served_leaf(addr, DOMAIN, &root).await {
            if other != Some(leaf.as_ref()) {
                return leaf.to_vec();
            }
        }
        assert!(
            Instant::now() < deadline,
            "no new certificate from pebble on {addr} within {within:?}; pebble's log:\n{}",
            pebble.log()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_is_issued_over_tls_alpn_served_everywhere_renewed_and_cached() {
    let https_port = free_port();
    // Short-lived certificates, so a renewal (two thirds in) comes soon.
    let pebble = Pebble::start(https_port, free_port(), 30);
    let settings = acme(&pebble, ChallengeKind::TlsAlpn01, None);
    let server = serve(https_port, settings.clone()).await;

    let first = certificate_other_than(&pebble, server.http, None, Duration::from_secs(30)).await;
    let turn_tls = server.turn_tls.expect("TURN/TLS listens when TLS is on");
    let root = pebble.issuing_root().await;
    assert_eq!(
        served_leaf(turn_tls, DOMAIN, &root)
            .await
            .map(|c| c.to_vec()),
        Some(first.clone()),
        "TURN/TLS presents the same certificate"
    );
    // OpenSSL, a client written elsewhere, accepts both as browsers would.
    for addr in [server.http, turn_tls] {
        let checked = openssl_verifies(addr, DOMAIN, &root, &pebble.dir);
        assert_eq!(checked, Ok(()), "openssl s_client on {addr}");
    }

    // Renewed about 20 s in, with no restart; TURN/TLS follows.
    let renewed =
        certificate_other_than(&pebble, server.http, Some(&first), Duration::from_secs(40)).await;
    assert_eq!(
        served_leaf(turn_tls, DOMAIN, &root)
            .await
            .map(|c| c.to_vec()),
        Some(renewed.clone())
    );
    server.shutdown.now();
    let _ = server.stopped.await;

    // A restart serves the cached certificate at once, without an order.
    let again = serve(https_port, settings).await;
    let leaf = served_leaf(again.http, DOMAIN, &root).await;
    assert_eq!(
        leaf.map(|c| c.to_vec()),
        Some(renewed),
        "the certificate cached in the data directory is served after a restart"
    );
    again.shutdown.now();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_is_issued_over_http_01_on_the_plain_http_port() {
    let http_port = free_port();
    let pebble = Pebble::start(free_port(), http_port, 3600);
    let server = serve(0, acme(&pebble, ChallengeKind::Http01, Some(http_port))).await;
    certificate_other_than(&pebble, server.http, None, Duration::from_secs(30)).await;

    // Everything else on the plain port is sent to HTTPS.
    let response = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
        .get(format!("http://127.0.0.1:{http_port}/some/page?x=1"))
        .header("host", DOMAIN)
        .send()
        .await
        .expect("plain HTTP answers");
    assert_eq!(response.status(), 308);
    assert_eq!(
        response.headers()["location"],
        format!("https://{DOMAIN}/some/page?x=1").as_str()
    );
    server.shutdown.now();
}

/// The CA cannot reach moim (here: pebble validates on a port nobody
/// listens on, as when a firewall blocks 443). moim keeps serving and says
/// which check failed, what the CA saw, and what to look at.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ca_that_cannot_reach_moim_is_explained_to_the_operator() {
    let nobody_listens = free_port();
    let pebble = Pebble::start(nobody_listens, free_port(), 3600);
    let settings = acme(&pebble, ChallengeKind::TlsAlpn01, None);
    let server = serve(0, settings).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let line = loop {
        let log = log_text();
        if let Some(line) = log.lines().find(|l| l.contains("ACME order failed")) {
            break line.to_string();
        }
        assert!(Instant::now() < deadline, "no ACME failure logged:\n{log}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(line.contains("ERROR"), "{line}");
    assert!(
        line.contains("could not validate meet.moim.test with tls-alpn-01"),
        "{line}"
    );
    assert!(
        line.contains("TCP port 443"),
        "says where the CA connects: {line}"
    );
    assert!(
        line.contains("security group"),
        "and what usually blocks it: {line}"
    );
    assert!(
        line.contains("browsers cannot connect"),
        "and what it means: {line}"
    );
    // The server still answers; HTTPS just has no certificate yet.
    assert!(
        served_leaf(server.http, DOMAIN, &pebble.issuing_root().await)
            .await
            .is_none()
    );
    server.shutdown.now();
}
