//! Let's Encrypt's test CA, Debian's `pebble`, on loopback, with
//! `pebble-challtestsrv` as its DNS server: every name resolves to
//! 127.0.0.1, so pebble validates against the moim under test.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};

pub struct Pebble {
    pub directory: String,
    /// The CA pebble's own HTTPS is signed by (trusted by moim's ACME client).
    pub api_ca: PathBuf,
    management: SocketAddr,
    api_ca_der: CertificateDer<'static>,
    children: Vec<Child>,
    pub dir: PathBuf,
}

/// A port free now and not handed out before in this process: the tests
/// of one binary run at once and name ports before anything binds them.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

fn require(bin: &str) {
    let found = Command::new(bin)
        .arg("-h")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    assert!(
        found,
        "{bin} not found: install Debian's pebble package (scripts/install-deps.sh does)"
    );
}

impl Pebble {
    /// Validates TLS-ALPN-01 on `tls_port` and HTTP-01 on `http_port`;
    /// certificates live `validity` seconds.
    pub fn start(tls_port: u16, http_port: u16, validity_secs: u64) -> Self {
        require("pebble");
        require("pebble-challtestsrv");
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "moim-pebble-{}-{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("pebble dir");
        // Pebble's API is HTTPS only, so it needs a certificate of its own.
        let ca_key = rcgen::KeyPair::generate().expect("key");
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).expect("CA");
        let leaf_key = rcgen::KeyPair::generate().expect("key");
        let leaf_params =
            rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
                .expect("params");
        let leaf = leaf_params
            .signed_by(&leaf_key, &ca, &ca_key)
            .expect("leaf");
        let api_ca = dir.join("api-ca.pem");
        std::fs::write(&api_ca, ca.pem()).expect("write");
        std::fs::write(dir.join("api.pem"), leaf.pem()).expect("write");
        std::fs::write(dir.join("api.key"), leaf_key.serialize_pem()).expect("write");

        let listen: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        let management: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        let dns: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        let config = serde_json::json!({
            "pebble": {
                "listenAddress": listen.to_string(),
                "managementListenAddress": management.to_string(),
                "certificate": dir.join("api.pem"),
                "privateKey": dir.join("api.key"),
                "httpPort": http_port,
                "tlsPort": tls_port,
                "ocspResponderURL": "",
                "externalAccountBindingRequired": false,
                "certificateValidityPeriod": validity_secs,
            }
        });
        std::fs::write(dir.join("pebble.json"), config.to_string()).expect("write");
        let log = |name: &str| {
            std::fs::File::create(dir.join(name))
                .map(Stdio::from)
                .unwrap_or_else(|_| Stdio::null())
        };
        let dns_server = Command::new("pebble-challtestsrv")
            .args([
                "-dns01",
                &dns.to_string(),
                "-http01",
                "",
                "-https01",
                "",
                "-tlsalpn01",
                "",
            ])
            .args(["-management", &format!("127.0.0.1:{}", free_port())])
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
            .stdout(log("challtestsrv.log"))
            .stderr(log("challtestsrv.err"))
            .spawn()
            .expect("start pebble-challtestsrv");
        let pebble = Command::new("pebble")
            .arg("-config")
            .arg(dir.join("pebble.json"))
            .args(["-dnsserver", &dns.to_string()])
            // No random waits, no random nonce rejections, and a fresh
            // validation for each order (a renewal proves the challenge again).
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .env("PEBBLE_AUTHZREUSE", "0")
            .stdout(log("pebble.log"))
            .stderr(log("pebble.err"))
            .spawn()
            .expect("start pebble");
        let this = Self {
            directory: format!("https://{listen}/dir"),
            api_ca,
            management,
            api_ca_der: ca.der().clone(),
            children: vec![dns_server, pebble],
            dir,
        };
        for _ in 0..100 {
            if std::net::TcpStream::connect(listen).is_ok()
                && std::net::TcpStream::connect(management).is_ok()
            {
                return this;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("pebble did not start; see {}", this.dir.display());
    }

    /// The root pebble issues under (made fresh at each pebble start).
    pub async fn issuing_root(&self) -> CertificateDer<'static> {
        let body = https_get(self.management, &self.api_ca_der, "/roots/0").await;
        CertificateDer::from_pem_slice(body.as_bytes()).expect("a PEM root from pebble")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("pebble.log")).unwrap_or_default()
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub fn client_config(root: CertificateDer<'static>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(root).expect("root");
    Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth(),
    )
}

/// The leaf certificate a TLS server at `addr` presents for `name`,
/// verified against `root`; `None` if the handshake fails.
pub async fn served_leaf(
    addr: SocketAddr,
    name: &str,
    root: &CertificateDer<'static>,
) -> Option<CertificateDer<'static>> {
    let connector = tokio_rustls::TlsConnector::from(client_config(root.clone()));
    let tcp = tokio::net::TcpStream::connect(addr).await.ok()?;
    let tls = tokio::time::timeout(
        Duration::from_secs(5),
        connector.connect(ServerName::try_from(name.to_string()).ok()?, tcp),
    )
    .await
    .ok()?
    .ok()?;
    tls.get_ref().1.peer_certificates()?.first().cloned()
}

async fn https_get(addr: SocketAddr, ca: &CertificateDer<'static>, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let connector = tokio_rustls::TlsConnector::from(client_config(ca.clone()));
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("tcp");
    let mut tls = connector
        .connect(ServerName::try_from("127.0.0.1").expect("name"), tcp)
        .await
        .expect("TLS to pebble's management API");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    tls.write_all(request.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    let _ = tls.read_to_end(&mut out).await;
    let text = String::from_utf8_lossy(&out).into_owned();
    text.split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or(text)
}

/// OpenSSL's view of the same server, a TLS client written elsewhere:
/// `openssl s_client` with only `root` trusted, checking the chain and the
/// host name. `Err` carries what it printed.
pub fn openssl_verifies(
    addr: SocketAddr,
    name: &str,
    root: &CertificateDer<'static>,
    dir: &std::path::Path,
) -> Result<(), String> {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(root.as_ref());
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .filter_map(|c| std::str::from_utf8(c).ok())
        .collect();
    let pem = format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        lines.join("\n")
    );
    let ca = dir.join("issuing-root.pem");
    std::fs::write(&ca, pem).map_err(|e| e.to_string())?;
    let out = Command::new("openssl")
        .args(["s_client", "-brief", "-verify_return_error"])
        .args(["-connect", &addr.to_string(), "-servername", name])
        .args(["-verify_hostname", name, "-CAfile"])
        .arg(&ca)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("openssl not found ({e}): scripts/install-deps.sh installs it"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() && text.contains("Verification: OK") {
        Ok(())
    } else {
        Err(text)
    }
}
