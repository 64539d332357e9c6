//! What moim-turn must refuse, seen from coturn's turnutils_uclient:
//! expired and forged REST credentials, and loopback peers by default.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;

const LIMIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_rest_credentials_are_refused() {
    let Some(bin) = uclient() else { return };
    let handle = start(loopback_config(true)).await;
    let server = handle.udp_addr.expect("udp");
    // Valid HMAC, but the expiry is 10 s in the past.
    let past = SystemTime::now() - Duration::from_secs(70);
    let (user, pass) = moim_turn::rest_credentials(SECRET, "late", Duration::from_secs(60), past);
    let run = run_uclient(bin, relay_args(server, &user, &pass, &[]), LIMIT).await;
    println!("{}", run.output);
    assert!(!run.ok, "uclient must fail:\n{}", run.output);
    assert!(
        run.output.contains("Cannot complete Allocation"),
        "{}",
        run.output
    );
    // uclient only says it could not allocate; the wire says why.
    assert_eq!(raw_allocate(server, &user, &pass).await, 401);
    assert_eq!(run.lost_packets(), None);
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_rest_credentials_are_refused() {
    let Some(bin) = uclient() else { return };
    let handle = start(loopback_config(true)).await;
    let server = handle.udp_addr.expect("udp");
    let expiry = SystemTime::now() + Duration::from_secs(600);
    let unix = expiry.duration_since(UNIX_EPOCH).expect("clock").as_secs();
    let user = format!("{unix}:forger");
    // Password minted with another secret.
    let (_, pass) = moim_turn::rest_credentials(
        "not-the-secret",
        "forger",
        Duration::from_secs(600),
        SystemTime::now(),
    );
    let run = run_uclient(bin, relay_args(server, &user, &pass, &[]), LIMIT).await;
    println!("{}", run.output);
    assert!(!run.ok, "uclient must fail:\n{}", run.output);
    assert!(
        run.output.contains("Cannot complete Allocation"),
        "{}",
        run.output
    );
    // uclient only says it could not allocate; the wire says why.
    assert_eq!(raw_allocate(server, &user, &pass).await, 401);
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_policy_refuses_loopback_peers() {
    let Some(bin) = uclient() else { return };
    // Not dangerous: relaying to 127.0.0.1 (uclient's other relay) is refused.
    let handle = start(loopback_config(false)).await;
    let server = handle.udp_addr.expect("udp");
    let (user, pass) = credentials("uclient", Duration::from_secs(600));
    let run = run_uclient(bin, relay_args(server, &user, &pass, &[]), LIMIT).await;
    println!("{}", run.output);
    assert!(!run.ok, "uclient must fail:\n{}", run.output);
    assert!(
        run.output.contains("403"),
        "expected a 403:\n{}",
        run.output
    );
    assert_ne!(run.totals().map(|t| t.1), Some(80), "no data may flow");
    handle.shutdown().await;
}

#[tokio::test]
async fn raw_client_sees_401_for_bad_and_success_for_good_credentials() {
    let handle = start(loopback_config(false)).await;
    let server = handle.udp_addr.expect("udp");
    let (user, pass) = credentials("raw", Duration::from_secs(600));
    assert_eq!(raw_allocate(server, &user, &pass).await, 0);
    assert_eq!(raw_allocate(server, &user, "forged").await, 401);
    let (late, late_pass) = moim_turn::rest_credentials(
        SECRET,
        "raw",
        Duration::from_secs(1),
        SystemTime::now() - Duration::from_secs(5),
    );
    assert_eq!(raw_allocate(server, &late, &late_pass).await, 401);
    handle.shutdown().await;
}

#[tokio::test]
async fn port_in_use_error_speaks_to_operators() {
    let taken = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let mut cfg = loopback_config(false);
    cfg.udp_listen = Some(taken.local_addr().expect("addr"));
    let err = moim_turn::spawn(cfg)
        .await
        .expect_err("must not bind twice");
    let msg = err.to_string();
    assert!(msg.contains("cannot bind TURN UDP on 127.0.0.1:"), "{msg}");
    assert!(msg.contains("another TURN server (coturn?)"), "{msg}");
}

#[tokio::test]
async fn unspecified_relay_without_public_ip_is_a_config_error() {
    let mut cfg = loopback_config(false);
    cfg.relay_ip = "0.0.0.0".parse().expect("ip");
    let err = moim_turn::spawn(cfg).await.expect_err("config error");
    assert!(err.to_string().contains("public IP"), "{err}");
}
