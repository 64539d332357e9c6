//! An operator runs moim for weeks. A crowd joins and leaves, again and
//! again; once they are gone the server's memory must come back down to what
//! it used idle, not stay at the crowd's high-water mark or creep upwards.
//!
//! Measured through the real binary's /proc entries. The wait for memory to
//! come back is bounded (a minute), and the bound on memory is the claim:
//! within 20% of the idle baseline, plus a small allowance for what a first
//! crowd warms up once (thread caches, the room map's capacity).

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{Moim, MOIM};
use moim_loadtest::{procfs, run_signal_only, SignalOptions};

/// Participants per crowd: enough that their memory dwarfs the allowance.
const CROWD: usize = 2_000;
const CROWDS: usize = 3;
/// What one crowd may leave behind for good, on top of the 20%.
const WARM_ALLOWANCE: u64 = 8 << 20;

fn rss(server: &Moim) -> u64 {
    procfs::status_bytes(&server.pid(), "VmRSS").expect("VmRSS")
}

fn mib(b: u64) -> f64 {
    b as f64 / f64::from(1 << 20)
}

/// The lowest RSS seen while polling for up to `limit`, returning early
/// once it is at or under `goal`.
fn settle(server: &Moim, goal: u64, limit: Duration) -> u64 {
    let deadline = Instant::now() + limit;
    let mut lowest = rss(server);
    while lowest > goal && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
        lowest = lowest.min(rss(server));
    }
    lowest
}

#[test]
fn memory_comes_back_after_crowds_join_and_leave() {
    let server = Moim::serve(&[
        ("MOIM_LOG", "warn,moim_server=info"),
        ("MOIM_EMPTY_TIMEOUT_SECS", "1"),
    ]);
    let url = server.ws_url();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    // One small crowd first, so the baseline includes what any use warms up.
    let warm_up = SignalOptions {
        url: url.clone(),
        participants: 50,
        room_size: 50,
        hold: Duration::from_millis(200),
        ..SignalOptions::default()
    };
    runtime.block_on(run_signal_only(&warm_up, &mut |_| {}));
    std::thread::sleep(Duration::from_secs(3));
    let idle = rss(&server);
    let within_a_fifth = idle + idle / 5;
    let goal = within_a_fifth + WARM_ALLOWANCE;
    eprintln!(
        "idle RSS {:.1} MiB; after each crowd it should fall to {:.1} MiB, and must to {:.1} MiB",
        mib(idle),
        mib(within_a_fifth),
        mib(goal)
    );

    let mut after = Vec::new();
    for round in 1..=CROWDS {
        let mut peak = 0;
        let crowd = SignalOptions {
            url: url.clone(),
            participants: CROWD,
            room_size: 100,
            hold: Duration::from_secs(1),
            ..SignalOptions::default()
        };
        let pid = server.pid();
        let report = runtime.block_on(run_signal_only(&crowd, &mut |_| {
            peak = procfs::status_bytes(&pid, "VmRSS").expect("VmRSS");
        }));
        assert_eq!(report.joined, CROWD, "every participant joins: {report:?}");
        let settled = settle(&server, within_a_fifth, Duration::from_secs(60));
        eprintln!(
            "crowd {round}: {CROWD} joined, RSS {:.1} MiB with the crowd, {:.1} MiB after it left",
            mib(peak),
            mib(settled)
        );
        let rooms = Command::new(MOIM)
            .args(["rooms", "list", "--url", &url])
            .output()
            .expect("moim rooms list");
        // The memory measured is that of an empty server, not of stragglers.
        let listed = String::from_utf8_lossy(&rooms.stdout);
        assert!(
            listed.contains("no rooms"),
            "every room closed after crowd {round}: {listed}"
        );
        after.push(settled);
    }
    for (round, settled) in after.iter().enumerate() {
        assert!(
            *settled <= goal,
            "after crowd {}, RSS stayed at {:.1} MiB against an idle {:.1} MiB (goal {:.1} MiB)",
            round + 1,
            mib(*settled),
            mib(idle),
            mib(goal)
        );
    }
}
