//! An operator whose users sit behind firewalls that let only port 443
//! out runs `moim serve --single-port 443`. On that one TCP port moim
//! serves HTTPS and TURN over TLS and TCP, and on the same UDP port TURN
//! over UDP; coturn's turnutils_uclient relays through it over all three
//! with nothing lost, and an HTTPS client gets its answer on the same port. (Browsers over ICE-TCP and TURN on that
//! port, inside a network that allows nothing else, are in
//! tests/netns/single-port.test.mjs.)

mod common;

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, SystemTime};

use moim_server::tls::TlsSettings;

const TURN_SECRET: &str = "one-port-test-secret";

fn uclient_found() -> bool {
    let found = Command::new("turnutils_uclient").arg("-h").output().is_ok();
    assert!(
        found || std::env::var_os("CI").is_none(),
        "turnutils_uclient not found under CI: scripts/install-deps.sh installs coturn"
    );
    found
}

/// uclient in client-to-client mode (two allocations relaying to each
/// other), 40 messages each way; returns its output and exit status.
fn uclient(port: u16, transport: &[&str]) -> (bool, String) {
    let (user, pass) = moim_turn::rest_credentials(
        TURN_SECRET,
        "uclient",
        Duration::from_secs(600),
        SystemTime::now(),
    );
    let out = Command::new("timeout")
        .arg("60")
        .arg("turnutils_uclient")
        .args(["-y", "-c", "-n", "40", "-m", "2", "-l", "120", "-z", "5"])
        .args(transport)
        .args(["-u", &user, "-w", &pass, "-p", &port.to_string()])
        .args(["-e", "127.0.0.1", "127.0.0.1"])
        .output()
        .expect("uclient runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn lost(output: &str) -> Option<u64> {
    let line = output.lines().find(|l| l.contains("Total lost packets"))?;
    line.split("Total lost packets")
        .nth(1)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_and_turn_over_udp_tcp_and_tls_share_one_port() {
    let port = common::pebble::free_port();
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let server = common::start_with(|c| {
        c.port = port;
        c.one_port = true;
        c.domain = Some("localhost".into());
        c.tls = Some(TlsSettings::SelfSigned {
            names: vec!["localhost".into(), "127.0.0.1".into()],
        });
        if let Some(t) = c.turn.as_mut() {
            t.secret = TURN_SECRET.into();
            // uclient's two clients relay to each other on loopback.
            t.dangerous_allow_private_peers = true;
        }
    })
    .await;
    assert_eq!(server.http.port(), port);
    assert_ne!(
        server.udp.port(),
        port,
        "media keeps its own UDP port: Chromium refuses remote candidates under 1024"
    );

    let https = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .expect("client")
        .get(format!("https://127.0.0.1:{port}/healthz"))
        .send()
        .await
        .expect("HTTPS on the one port");
    assert_eq!(https.text().await.expect("body"), "ok");

    if uclient_found() {
        for (name, flags) in [
            ("TURN over UDP", &[][..]),
            ("TURN over TCP", &["-t"][..]),
            ("TURN over TLS", &["-t", "-S"][..]),
        ] {
            let (ok, output) = tokio::task::spawn_blocking(move || uclient(port, flags))
                .await
                .expect("uclient");
            assert!(ok, "{name} through the one port:\n{output}");
            assert_eq!(lost(&output), Some(0), "{name} loses nothing:\n{output}");
        }
    }

    // What is none of these is closed, and the port keeps serving.
    let mut junk = tokio::net::TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], port)))
        .await
        .expect("connect");
    tokio::io::AsyncWriteExt::write_all(&mut junk, &[0xff; 32])
        .await
        .expect("write");
    let mut buf = [0u8; 8];
    let n = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::io::AsyncReadExt::read(&mut junk, &mut buf),
    )
    .await
    .expect("closed, not left hanging");
    assert!(matches!(n, Ok(0) | Err(_)));
    server.shutdown.now();
}
