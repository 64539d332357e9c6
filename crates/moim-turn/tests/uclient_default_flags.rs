//! coturn's turnutils_uclient with its default flags (no `-c`) relays
//! through moim-turn over UDP, TCP and TLS. By default uclient gives each
//! client an RTP and an RTCP allocation: one Allocate carries EVEN-PORT with
//! the R bit, and the next carries the RESERVATION-TOKEN it got back
//! (RFC 8656 §7.2). moim used to answer that with 420 Unknown Attribute.

mod common;

use std::time::{Duration, Instant};

use common::*;

const LIMIT: Duration = Duration::from_secs(60);

/// What `-v` output says about each Allocate, in order: the relayed port
/// and the reservation token (0 when none).
fn allocations(output: &str) -> Vec<(u16, u64)> {
    let mut out: Vec<(u16, u64)> = Vec::new();
    for line in output.lines() {
        if let Some(rest) = line.split("Received relay addr: ").nth(1) {
            let port = rest.trim().rsplit(':').next().and_then(|p| p.parse().ok());
            out.push((port.unwrap_or(0), 0));
        } else if let Some(rest) = line.split("rtv=").nth(1) {
            if let (Some(last), Ok(rtv)) = (out.last_mut(), rest.trim().parse()) {
                last.1 = rtv;
            }
        }
    }
    out
}

async fn default_flags_relay(
    transport_flags: &[&str],
    pick: fn(&moim_turn::TurnHandle) -> Option<std::net::SocketAddr>,
) {
    let Some(bin) = uclient() else { return };
    let handle = start(loopback_config(true)).await;
    let server = pick(&handle).expect("listener bound");
    let (user, pass) = credentials("uclient", Duration::from_secs(600));
    let mut extra = vec!["-v"];
    extra.extend_from_slice(transport_flags);
    let started = Instant::now();
    let run = run_uclient(bin, relay_args(server, &user, &pass, &extra), LIMIT).await;
    let took = started.elapsed();
    assert!(run.ok, "uclient failed:\n{}", run.output);
    let allocs = allocations(&run.output);
    println!(
        "uclient default flags {transport_flags:?}: {:?}, {:?}; allocations (port, token): \
         {allocs:?}; took {took:?}",
        run.line("Total lost packets"),
        run.totals(),
    );

    // The relay works: 2 clients x (RTP + RTCP) x 40 messages each way.
    assert_eq!(run.lost_packets(), Some(0), "loss:\n{}", run.output);
    assert_eq!(run.totals(), Some((160, 160)), "totals:\n{}", run.output);

    // EVEN-PORT R=1 gave an even port and a token, and the Allocate that
    // presented the token got the port right above it.
    let reserving: Vec<usize> = (0..allocs.len()).filter(|&i| allocs[i].1 != 0).collect();
    assert!(reserving.len() >= 2, "tokens issued: {allocs:?}");
    for &i in &reserving {
        assert_eq!(
            allocs[i].0 % 2,
            0,
            "reserving allocation is even: {allocs:?}"
        );
        if let Some(claimed) = allocs.get(i + 1) {
            assert_eq!(claimed.0, allocs[i].0 + 1, "token claims N+1: {allocs:?}");
        }
    }
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uclient_default_flags_relay_over_udp() {
    default_flags_relay(&[], |h| h.udp_addr).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uclient_default_flags_relay_over_tcp() {
    default_flags_relay(&["-t"], |h| h.tcp_addr).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uclient_default_flags_relay_over_tls() {
    default_flags_relay(&["-t", "-S"], |h| h.tls_addr).await;
}
