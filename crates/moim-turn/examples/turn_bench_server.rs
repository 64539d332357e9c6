//! Benchmark harness, not a product: moim-turn on 127.0.0.1 with loopback
//! peers allowed, so coturn's `turnutils_uclient -y` can relay through it.
//! Used by `bench/turn/run.sh`.
//!
//! `turn_bench_server [PORT] [SECRET] [REALM]` (defaults 3478, benchsecret,
//! bench.test). Prints `ready <udp addr>` once bound and runs until killed.
//! Limits match coturn's defaults (no per-user quota, no bandwidth cap).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

fn main() {
    let mut args = std::env::args().skip(1);
    let port: u16 = args
        .next()
        .map(|p| p.parse().expect("PORT must be a number"))
        .unwrap_or(3478);
    let secret = args.next().unwrap_or_else(|| "benchsecret".into());
    let realm = args.next().unwrap_or_else(|| "bench.test".into());
    let workers: usize = std::env::var("TURN_BENCH_WORKERS")
        .ok()
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async move {
        let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let mut cfg = moim_turn::TurnConfig::new(realm, secret, lo);
        cfg.udp_listen = Some(SocketAddr::new(lo, port));
        cfg.tcp_listen = Some(SocketAddr::new(lo, port));
        cfg.relay_port_range = 40000..=49999;
        cfg.user_quota = 100_000;
        cfg.peer_policy.dangerous().allow_private_peers(true);
        let handle = moim_turn::spawn(cfg).await.expect("TURN server starts");
        println!("ready {:?} workers={workers}", handle.udp_addr);
        std::future::pending::<()>().await;
    });
}
