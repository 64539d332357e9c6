//! coturn's turnutils_uclient relays through moim-turn over UDP, TCP and TLS
//! with TURN REST credentials, and loses nothing. These run with `-c` (one
//! allocation per client, no RTCP twin); uclient_default_flags.rs runs
//! without it.

mod common;

use std::time::Duration;

use common::*;

const LIMIT: Duration = Duration::from_secs(60);

async fn relay_without_loss(
    transport_flags: &[&str],
    pick: fn(&moim_turn::TurnHandle) -> Option<std::net::SocketAddr>,
) {
    let Some(bin) = uclient() else { return };
    let handle = start(loopback_config(true)).await;
    let server = pick(&handle).expect("listener bound");
    let (user, pass) = credentials("uclient", Duration::from_secs(600));
    let run = run_uclient(
        bin,
        relay_args(server, &user, &pass, transport_flags),
        LIMIT,
    )
    .await;
    println!("{}", run.output);
    println!(
        "uclient {transport_flags:?}: {:?}",
        run.line("Total lost packets")
    );
    assert!(run.ok, "uclient failed:\n{}", run.output);
    assert_eq!(
        run.lost_packets(),
        Some(0),
        "loss reported:\n{}",
        run.output
    );
    // 2 clients x 40 messages each way.
    assert_eq!(run.totals(), Some((80, 80)), "totals:\n{}", run.output);
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uclient_relays_over_udp_with_channels_without_loss() {
    relay_without_loss(&["-c"], |h| h.udp_addr).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uclient_relays_over_udp_with_send_indications_without_loss() {
    relay_without_loss(&["-c", "-s"], |h| h.udp_addr).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uclient_relays_over_tcp_without_loss() {
    relay_without_loss(&["-c", "-t"], |h| h.tcp_addr).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uclient_relays_over_tls_without_loss() {
    relay_without_loss(&["-c", "-t", "-S"], |h| h.tls_addr).await;
}

/// uclient computes the REST username and password itself from the shared
/// secret (`-W`): coturn's formula and moim's agree.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uclient_rest_secret_mode_matches_our_formula() {
    let Some(bin) = uclient() else { return };
    let handle = start(loopback_config(true)).await;
    let server = handle.udp_addr.expect("udp");
    let mut args = relay_args(server, "uclient", "unused", &["-c", "-W", SECRET]);
    // Drop "-w unused": with -W uclient derives the password.
    if let Some(i) = args.iter().position(|a| a == "-w") {
        args.drain(i..i + 2);
    }
    let run = run_uclient(bin, args, LIMIT).await;
    println!("uclient -W: {:?}", run.line("Total lost packets"));
    assert!(run.ok, "uclient failed:\n{}", run.output);
    assert_eq!(run.lost_packets(), Some(0), "{}", run.output);
    assert_eq!(run.totals(), Some((80, 80)), "{}", run.output);
    handle.shutdown().await;
}
