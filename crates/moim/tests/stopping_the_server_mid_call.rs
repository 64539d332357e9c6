//! The operator's view, through the real binary: `moim serve` stopped with
//! SIGTERM in the middle of a load test drains, sends everyone a Leave and
//! exits 0; a server that dies outright makes `moim load-test` fail loudly
//! instead of reporting success.

mod common;

use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::{Moim, MOIM};

fn serve(drain_secs: u64) -> Moim {
    Moim::serve(&[("MOIM_DRAIN_TIMEOUT_SECS", &drain_secs.to_string())])
}

fn wait_exit(child: &mut Child, limit: Duration) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("moim did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn signal(child: &Child, name: &str) {
    let ok = Command::new("kill")
        .args([name, &child.id().to_string()])
        .status()
        .expect("kill runs")
        .success();
    assert!(ok, "kill {name} succeeds");
}

fn load_test(http: SocketAddr, duration: &str) -> Child {
    Command::new(MOIM)
        .args([
            "load-test",
            "--url",
            &format!("ws://{http}"),
            "--publishers",
            "1",
            "--subscribers",
            "1",
            "--audio-only",
            "--duration",
            duration,
            "--json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("moim load-test starts")
}

fn finish(load: Child) -> (ExitStatus, serde_json::Value, String) {
    let out = load.wait_with_output().expect("load test output");
    let report = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (
        out.status,
        report,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn sigterm_during_a_call_drains_sends_leave_and_exits_zero() {
    let mut moim = serve(1);
    let load = load_test(moim.http, "8s");
    // Joins take well under a second on loopback, and the window opens after
    // a 2 s settle: by now the call is on.
    std::thread::sleep(Duration::from_secs(4));
    signal(&moim.child, "-TERM");
    let status = wait_exit(&mut moim.child, Duration::from_secs(15));
    assert!(status.success(), "moim exits 0 after draining: {status}");
    let log: Vec<String> = moim.log.try_iter().collect();
    assert!(
        log.iter().any(|l| l.contains("draining")),
        "the log says it drains:\n{}",
        log.join("\n")
    );

    let (status, report, stderr) = finish(load);
    assert!(!status.success(), "the load test notices: {stderr}");
    assert_eq!(
        report["disconnects"], 2,
        "both participants were sent away: {report}"
    );
    let first = report["first_disconnect"].as_str().unwrap_or_default();
    assert!(first.contains("ServerShutdown"), "{first}");
}

#[test]
fn a_load_test_whose_server_dies_exits_non_zero_and_says_so() {
    let mut moim = serve(25);
    let load = load_test(moim.http, "6s");
    std::thread::sleep(Duration::from_secs(4));
    moim.child.kill().expect("kill -9 moim");
    let _ = moim.child.wait();

    let (status, report, stderr) = finish(load);
    assert!(!status.success(), "a dead server fails the run");
    assert_eq!(report["disconnects"], 2, "{report}");
    assert!(
        report["media_gaps"].as_u64().unwrap_or(0) >= 1,
        "the frozen streams are gaps: {report}"
    );
    assert!(stderr.contains("disconnected"), "{stderr}");
}
