//! Shared helpers: a loopback moim-turn and coturn's turnutils_uclient.

#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use moim_turn::{spawn, TurnConfig, TurnHandle};

pub const SECRET: &str = "integration-secret";
pub const REALM: &str = "moim.test";
const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// The uclient binary, or `None` after printing why the test is skipped.
pub fn uclient() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("turnutils_uclient"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        // CI installs coturn (scripts/install-deps.sh); there a missing
        // client is a broken set-up, not a reason to pass.
        assert!(
            std::env::var_os("CI").is_none(),
            "turnutils_uclient not found in PATH under CI: scripts/install-deps.sh should have \
             installed coturn"
        );
        eprintln!(
            "SKIPPED: turnutils_uclient not found in PATH; install coturn \
             (apt-get install -y coturn) to run this test"
        );
    }
    found
}

/// A self-signed rustls config for `localhost` (moim passes its own).
pub fn tls_config() -> Arc<rustls::ServerConfig> {
    tls_config_and_cert().0
}

/// [`tls_config`] and its certificate, for clients that must trust it.
pub fn tls_config_and_cert() -> (
    Arc<rustls::ServerConfig>,
    rustls::pki_types::CertificateDer<'static>,
) {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("rcgen");
    let cert = ck.cert.der().clone();
    let trust = cert.clone();
    let key = rustls::pki_types::PrivatePkcs8KeyDer::from(ck.key_pair.serialize_der());
    let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("protocol versions")
    .with_no_client_auth()
    .with_single_cert(vec![cert], key.into())
    .expect("certificate");
    (Arc::new(cfg), trust)
}

/// Loopback config on ephemeral ports. `dangerous` lets relays reach
/// loopback peers, which uclient's client-to-client mode needs.
pub fn loopback_config(dangerous: bool) -> TurnConfig {
    let mut cfg = TurnConfig::new(REALM, SECRET, LOOPBACK);
    cfg.udp_listen = Some(SocketAddr::new(LOOPBACK, 0));
    cfg.tcp_listen = Some(SocketAddr::new(LOOPBACK, 0));
    cfg.tls_listen = Some((SocketAddr::new(LOOPBACK, 0), tls_config()));
    cfg.relay_port_range = 40000..=49999;
    if dangerous {
        cfg.peer_policy.dangerous().allow_private_peers(true);
    }
    cfg
}

pub async fn start(cfg: TurnConfig) -> TurnHandle {
    spawn(cfg).await.expect("TURN server starts")
}

pub fn credentials(identity: &str, ttl: Duration) -> (String, String) {
    moim_turn::rest_credentials(SECRET, identity, ttl, SystemTime::now())
}

/// What uclient printed, and whether it exited 0.
pub struct Run {
    pub ok: bool,
    pub output: String,
}

impl Run {
    /// The numbers on uclient's "Total lost packets N (…)" line.
    pub fn lost_packets(&self) -> Option<u64> {
        let line = self
            .output
            .lines()
            .find(|l| l.contains("Total lost packets"))?;
        let rest = line.split("Total lost packets").nth(1)?;
        rest.split_whitespace().next()?.parse().ok()
    }

    /// (sent, received) from uclient's final "tot_send_msgs=N, tot_recv_msgs=M" line.
    pub fn totals(&self) -> Option<(u64, u64)> {
        let line = self
            .output
            .lines()
            .rev()
            .find(|l| l.contains("tot_send_msgs=") && !l.contains("msz="))?;
        let num = |key: &str| -> Option<u64> {
            let rest = line.split(key).nth(1)?;
            rest.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        };
        Some((num("tot_send_msgs=")?, num("tot_recv_msgs=")?))
    }

    pub fn line(&self, needle: &str) -> Option<&str> {
        self.output
            .lines()
            .find(|l| l.contains(needle))
            .map(str::trim)
    }
}

/// Runs uclient with `args`, killing it after `limit`.
pub async fn run_uclient(bin: PathBuf, args: Vec<String>, limit: Duration) -> Run {
    tokio::task::spawn_blocking(move || {
        let mut child = Command::new(&bin)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("uclient starts");
        let start = Instant::now();
        let timed_out = loop {
            match child.try_wait() {
                Ok(Some(_)) => break false,
                Ok(None) if start.elapsed() > limit => {
                    let _ = child.kill();
                    break true;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(50)),
                Err(_) => break true,
            }
        };
        let out = child.wait_with_output().expect("uclient output");
        let mut output = String::from_utf8_lossy(&out.stdout).into_owned();
        output.push_str(&String::from_utf8_lossy(&out.stderr));
        if timed_out {
            output.push_str("\n[killed: timed out]\n");
        }
        Run {
            ok: !timed_out && out.status.success(),
            output,
        }
    })
    .await
    .expect("uclient runner")
}

/// uclient arguments for client-to-client relaying through `server`.
/// Without `-c` in `extra`, uclient allocates an RTP/RTCP pair per client
/// with EVEN-PORT and RESERVATION-TOKEN.
pub fn relay_args(server: SocketAddr, user: &str, pass: &str, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = ["-y", "-n", "40", "-m", "2", "-l", "120", "-z", "5"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    args.extend([
        "-u".into(),
        user.into(),
        "-w".into(),
        pass.into(),
        "-p".into(),
        server.port().to_string(),
        "-e".into(),
        "127.0.0.1".into(),
        server.ip().to_string(),
    ]);
    args
}

/// Allocate round `round` (0: unauthenticated, 1: answering the challenge
/// with `realm` and `nonce`), as a raw STUN message.
pub fn allocate_request(
    round: u8,
    user: &str,
    pass: &str,
    realm: &str,
    nonce: Option<&str>,
) -> Vec<u8> {
    use moim_turn::proto::message::{attr, method, Class, Integrity, MessageBuilder};
    let mut b = MessageBuilder::new(Class::Request, method::ALLOCATE, [round + 1; 12]);
    b.add(attr::REQUESTED_TRANSPORT, &[17, 0, 0, 0]);
    let key = moim_turn::proto::long_term_key(user, realm, pass);
    let integrity = nonce.map(|n| {
        b.add(attr::USERNAME, user.as_bytes())
            .add(attr::REALM, realm.as_bytes())
            .add(attr::NONCE, n.as_bytes());
        (Integrity::Sha1, &key[..])
    });
    b.finish(integrity, true)
}

/// What an Allocate response means for the client: `Some(code)` when it is
/// final (0 for success), `None` when it is the first 401 challenge, whose
/// realm and nonce are kept for the next round.
pub fn allocate_outcome(
    resp: &[u8],
    nonce: &mut Option<String>,
    realm: &mut String,
) -> Option<u16> {
    use moim_turn::proto::message::{attr, Message};
    let m = Message::decode(resp).expect("STUN response");
    let Some(err) = m.get(attr::ERROR_CODE) else {
        return Some(0);
    };
    let code = u16::from(err[2]) * 100 + u16::from(err[3]);
    if code != 401 || nonce.is_some() {
        return Some(code);
    }
    *nonce = m.text(attr::NONCE).expect("utf8").map(str::to_owned);
    *realm = m
        .text(attr::REALM)
        .expect("utf8")
        .unwrap_or_default()
        .to_owned();
    None
}

/// A minimal Rust client: Allocate over UDP with `user`/`pass`, answering the
/// 401 challenge once. Returns the final error code, or 0 on success.
pub async fn raw_allocate(server: SocketAddr, user: &str, pass: &str) -> u16 {
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let mut nonce: Option<String> = None;
    let mut realm = String::new();
    for round in 0u8..2 {
        let req = allocate_request(round, user, pass, &realm, nonce.as_deref());
        sock.send_to(&req, server).await.expect("send");
        let mut buf = vec![0u8; 2048];
        let n = tokio::time::timeout(Duration::from_secs(5), sock.recv(&mut buf))
            .await
            .expect("answer within 5 s")
            .expect("recv");
        if let Some(code) = allocate_outcome(&buf[..n], &mut nonce, &mut realm) {
            return code;
        }
    }
    unreachable!("two rounds")
}
