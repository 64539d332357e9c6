//! The operator's view, through the real binary: `moim serve` stopped with
//! SIGTERM in the middle of a load test drains, sends everyone a Leave and
//! exits 0; a server that dies outright makes `moim load-test` fail loudly
//! instead of reporting success.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const MOIM: &str = env!("CARGO_BIN_EXE_moim");

struct Serving {
    child: Child,
    http: SocketAddr,
    log: mpsc::Receiver<String>,
}

/// `moim serve --dev` on loopback with OS-chosen ports; its log is read on
/// a thread and passed back line by line.
fn serve(drain_secs: u64) -> Serving {
    let mut child = Command::new(MOIM)
        .args([
            "serve",
            "--dev",
            "--bind",
            "127.0.0.1",
            "--port",
            "0",
            "--rtc-udp-port",
            "0",
            "--rtc-tcp-port",
            "0",
            "--no-turn",
        ])
        .env("MOIM_DRAIN_TIMEOUT_SECS", drain_secs.to_string())
        .env("MOIM_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("moim serve starts");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let http = loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("moim logs that it is serving");
        if line.contains("moim is serving") {
            let addr = line
                .split_whitespace()
                .find_map(|w| w.strip_prefix("http="))
                .expect("the serving line names the HTTP address");
            break addr.parse().expect("an address");
        }
    };
    Serving {
        child,
        http,
        log: rx,
    }
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
