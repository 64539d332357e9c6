//! Someone opens more TURN/TCP and TURN/TLS connections than moim has
//! slots, sends one unauthenticated Binding request on each, and goes
//! silent. A real client (coturn's turnutils_uclient) still allocates and
//! relays, the idle connections are closed soon after, and a connection
//! that did allocate is never closed for idling.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use moim_turn::proto::message::{method, Class, Message, MessageBuilder};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

const SLOTS: usize = 120;
const FLOOD: usize = 200;
const AUTH_DEADLINE: Duration = Duration::from_secs(2);

trait Conn: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Conn for T {}

/// Connects over TCP, or TLS when `trust` is given.
async fn connect(
    addr: SocketAddr,
    trust: Option<&rustls::pki_types::CertificateDer<'static>>,
) -> std::io::Result<Box<dyn Conn>> {
    let tcp = TcpStream::connect(addr).await?;
    let Some(cert) = trust else {
        return Ok(Box::new(tcp));
    };
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.clone()).map_err(std::io::Error::other)?;
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(std::io::Error::other)?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name =
        rustls::pki_types::ServerName::try_from("localhost").map_err(std::io::Error::other)?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(name, tcp)
        .await?;
    Ok(Box::new(tls))
}

/// Reads one STUN message from a stream.
async fn read_message(c: &mut Box<dyn Conn>) -> std::io::Result<Vec<u8>> {
    let mut msg = vec![0u8; 20];
    c.read_exact(&mut msg).await?;
    let len = usize::from(u16::from_be_bytes([msg[2], msg[3]]));
    msg.resize(20 + len, 0);
    c.read_exact(&mut msg[20..]).await?;
    Ok(msg)
}

/// One idle connection: a Binding request answered, then silence.
async fn idle_connection(
    addr: SocketAddr,
    trust: Option<&rustls::pki_types::CertificateDer<'static>>,
) -> Option<Box<dyn Conn>> {
    let mut c = connect(addr, trust).await.ok()?;
    let req = MessageBuilder::new(Class::Request, method::BINDING, [7; 12]).finish(None, false);
    c.write_all(&req).await.ok()?;
    let resp = tokio::time::timeout(Duration::from_secs(5), read_message(&mut c))
        .await
        .ok()?
        .ok()?;
    (Message::decode(&resp).ok()?.class == Class::Success).then_some(c)
}

/// Allocates over a stream with REST credentials; the error code, or 0.
async fn stream_allocate(c: &mut Box<dyn Conn>, user: &str, pass: &str) -> u16 {
    let mut nonce: Option<String> = None;
    let mut realm = String::new();
    for round in 0u8..2 {
        let req = allocate_request(round, user, pass, &realm, nonce.as_deref());
        c.write_all(&req).await.expect("write");
        let resp = read_message(c).await.expect("Allocate answered");
        if let Some(code) = allocate_outcome(&resp, &mut nonce, &mut realm) {
            return code;
        }
    }
    unreachable!("two rounds")
}

/// Waits (bounded) until the server closes `c`; the time it took.
async fn closed_within(mut c: Box<dyn Conn>, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut buf = [0u8; 64];
    loop {
        match tokio::time::timeout(limit, c.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Some(start.elapsed()),
            Ok(Ok(_)) => continue,
            Err(_) => return None,
        }
    }
}

async fn flood_then_real_client(tls: bool) {
    let Some(bin) = uclient() else { return };
    let (tls_cfg, cert) = tls_config_and_cert();
    let mut cfg = loopback_config(true);
    cfg.tls_listen = cfg.tls_listen.map(|(addr, _)| (addr, tls_cfg));
    cfg.max_connections = SLOTS;
    cfg.auth_deadline = AUTH_DEADLINE;
    let handle = start(cfg).await;
    let (addr, trust, flags, name) = if tls {
        (handle.tls_addr, Some(&cert), &["-t", "-S"][..], "TLS")
    } else {
        (handle.tcp_addr, None, &["-t"][..], "TCP")
    };
    let addr = addr.expect("listener");

    let started = Instant::now();
    let mut idle = Vec::new();
    for _ in 0..FLOOD {
        if let Some(c) = idle_connection(addr, trust).await {
            idle.push(c);
        }
    }
    println!(
        "TURN/{name}: {} of {FLOOD} idle connections opened against {SLOTS} slots in {:?}",
        idle.len(),
        started.elapsed()
    );

    // A real client while the flood holds every slot it can.
    let (user, pass) = credentials("uclient", Duration::from_secs(600));
    let run = run_uclient(bin, relay_args(addr, &user, &pass, flags), LIMIT).await;
    println!(
        "TURN/{name} during the flood: {:?}",
        run.line("Total lost packets")
    );
    assert!(run.ok, "uclient failed during the flood:\n{}", run.output);
    assert_eq!(run.lost_packets(), Some(0), "{}", run.output);
    assert_eq!(run.totals(), Some((160, 160)), "{}", run.output);

    // Every idle connection is closed: evicted, or past the deadline.
    let waits = futures_join(
        idle.into_iter()
            .map(|c| closed_within(c, AUTH_DEADLINE * 5)),
    )
    .await;
    let open = waits.iter().filter(|w| w.is_none()).count();
    println!(
        "TURN/{name}: {} idle connections closed by the server, the last by {:?} after the \
         flood began; {open} still open",
        waits.len() - open,
        started.elapsed()
    );
    assert_eq!(open, 0, "idle connections left open");
    handle.shutdown().await;
}

const LIMIT: Duration = Duration::from_secs(60);

/// Runs the futures concurrently and collects their outputs in order.
async fn futures_join<F, T>(futs: impl Iterator<Item = F>) -> Vec<T>
where
    F: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let handles: Vec<_> = futs.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.expect("task"));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_tcp_connections_do_not_shut_out_a_real_client() {
    flood_then_real_client(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_tls_connections_do_not_shut_out_a_real_client() {
    flood_then_real_client(true).await;
}

/// One source may hold only its share; another source is unaffected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_source_cannot_take_every_slot() {
    let Some(bin) = uclient() else { return };
    let mut cfg = loopback_config(true);
    cfg.max_connections_per_source = 20;
    cfg.auth_deadline = Duration::from_secs(30);
    let handle = start(cfg).await;
    let addr = handle.tcp_addr.expect("tcp");
    let mut idle = Vec::new();
    for _ in 0..40 {
        if let Some(c) = idle_connection(addr, None).await {
            idle.push(c);
        }
    }
    println!(
        "one source: {} of 40 connections served with a per-source limit of 20",
        idle.len()
    );
    assert_eq!(idle.len(), 20);
    // uclient from 127.0.0.2 is another source.
    let (user, pass) = credentials("uclient", Duration::from_secs(600));
    let mut args = relay_args(addr, &user, &pass, &["-t", "-c"]);
    args.splice(0..0, ["-L".to_string(), "127.0.0.2".to_string()]);
    let run = run_uclient(bin, args, LIMIT).await;
    assert!(
        run.ok,
        "uclient from another source failed:\n{}",
        run.output
    );
    assert_eq!(run.lost_packets(), Some(0), "{}", run.output);
    drop(idle);
    handle.shutdown().await;
}

/// A connection that allocated stays open past the deadline while idle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allocated_connection_outlives_the_deadline() {
    let mut cfg = loopback_config(true);
    cfg.auth_deadline = Duration::from_secs(1);
    let handle = start(cfg).await;
    let addr = handle.tcp_addr.expect("tcp");
    let (user, pass) = credentials("patient", Duration::from_secs(600));
    let mut allocated = connect(addr, None).await.expect("connect");
    assert_eq!(stream_allocate(&mut allocated, &user, &pass).await, 0);
    let idle = idle_connection(addr, None).await.expect("idle connection");
    let idle_closed = closed_within(idle, Duration::from_secs(10)).await;
    println!("idle connection closed after {idle_closed:?}");
    assert!(idle_closed.is_some(), "the idle connection is closed");
    // By now the allocated one is well past the deadline too; it is open.
    assert_eq!(
        closed_within(allocated, Duration::from_secs(2)).await,
        None,
        "the allocated connection stays open"
    );
    handle.shutdown().await;
}
