//! The benchmark harness: starts `moim serve --dev` on loopback for each scenario, runs the
//! load test against it, and samples the server's `/proc` entries over the same window.
//!
//! `moim-bench [--moim PATH] [--server-cpus 0] [--duration 20] [--scenarios a,b] [--signal N]
//!             [--audio-subs 500] [--out bench/results/latest.md]`
//! `bench/run.sh` builds everything in release mode, raises the fd limit and pins the server
//! and this process to different cores.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use moim_loadtest::{procfs, Options, Phase, Report, SignalOptions, SignalPhase, SignalReport};
use serde::Serialize;

struct Args {
    moim: PathBuf,
    server_cpus: Option<String>,
    duration: u64,
    scenarios: Vec<String>,
    audio_subs: usize,
    signal: usize,
    signal_room: usize,
    out: PathBuf,
}

fn parse_args() -> Result<Args, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut a = Args {
        moim: exe.with_file_name("moim"),
        server_cpus: None,
        duration: 20,
        scenarios: [
            "fanout-10",
            "fanout-50",
            "fanout-200",
            "meeting-10",
            "audio-2xN",
        ]
        .map(String::from)
        .to_vec(),
        audio_subs: 500,
        signal: 10_000,
        signal_room: 100,
        out: PathBuf::from("bench/results/latest.md"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().ok_or(format!("{k} needs a value"));
        let num = |s: String| s.parse::<u64>().map_err(|e| format!("{s}: {e}"));
        match k.as_str() {
            "--moim" => a.moim = v()?.into(),
            "--server-cpus" => a.server_cpus = Some(v()?),
            "--duration" => a.duration = num(v()?)?,
            "--scenarios" => {
                a.scenarios = v()?
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect()
            }
            "--audio-subs" => a.audio_subs = num(v()?)? as usize,
            "--signal" => a.signal = num(v()?)? as usize,
            "--signal-room" => a.signal_room = num(v()?)? as usize,
            "--out" => a.out = v()?.into(),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(a)
}

struct Server {
    child: Child,
    pid: String,
}

impl Server {
    fn start(a: &Args, log: &str) -> Result<Server, String> {
        // Wait for a previous server to release the ports (bounded).
        for _ in 0..50 {
            if TcpStream::connect("127.0.0.1:7880").is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let mut cmd = match &a.server_cpus {
            Some(cpus) => {
                let mut c = Command::new("taskset");
                c.args(["-c", cpus]).arg(&a.moim);
                c
            }
            None => Command::new(&a.moim),
        };
        let logf = std::fs::File::create(log).map_err(|e| format!("{log}: {e}"))?;
        cmd.args(["serve", "--dev"])
            .env("MOIM_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(logf);
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", a.moim.display()))?;
        let pid = child.id().to_string();
        let t = Instant::now();
        while TcpStream::connect("127.0.0.1:7880").is_err() {
            if t.elapsed() > Duration::from_secs(15) {
                return Err("server did not listen on 7880 within 15 s".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(300));
        Ok(Server { child, pid })
    }

    fn rss(&self) -> u64 {
        procfs::status_bytes(&self.pid, "VmRSS").unwrap_or(0)
    }

    fn cpu(&self) -> f64 {
        procfs::cpu_seconds(&self.pid).unwrap_or(f64::NAN)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Serialize)]
struct MediaResult {
    scenario: String,
    participants: usize,
    server_cpu_secs: f64,
    server_cores: f64,
    us_per_forwarded_packet: f64,
    forwarded_packets_per_sec: f64,
    server_rss_base_mib: f64,
    server_rss_end_mib: f64,
    rss_per_participant_kib: f64,
    server_threads_cpu_secs: BTreeMap<String, f64>,
    /// From the server's `moim_media_pass_seconds` histogram over the window:
    /// bucket bounds, so "at most".
    server_hold_p50_us: Option<f64>,
    server_hold_p99_us: Option<f64>,
    report: Report,
}

fn show_us(v: Option<f64>) -> String {
    v.map_or("–".into(), |us| format!("{us:.0}"))
}

#[derive(Serialize)]
struct SignalResult {
    server_rss_base_mib: f64,
    server_rss_joined_mib: f64,
    server_rss_hold_end_mib: f64,
    rss_per_connection_kib: f64,
    server_fds: usize,
    server_cpu_during_hold_cores: f64,
    report: SignalReport,
}

const MIB: f64 = 1024.0 * 1024.0;

fn scenario(name: &str, a: &Args) -> Option<Options> {
    let base = Options {
        duration: Duration::from_secs(a.duration),
        settle: Duration::from_secs(3),
        ..Options::default()
    };
    Some(match name {
        "fanout-10" | "fanout-50" | "fanout-200" => Options {
            publishers: 1,
            subscribers: name.trim_start_matches("fanout-").parse().ok()?,
            ..base
        },
        "meeting-10" => Options {
            publishers: 10,
            subscribers: 0,
            simulcast: true,
            ..base
        },
        "audio-2xN" => Options {
            publishers: 2,
            subscribers: a.audio_subs,
            audio_only: true,
            ..base
        },
        _ => return None,
    })
}

fn run_media(rt: &tokio::runtime::Runtime, a: &Args, name: &str) -> Result<MediaResult, String> {
    let opts = scenario(name, a).ok_or(format!("unknown scenario {name}"))?;
    let server = Server::start(a, &format!("/tmp/moim-bench-{name}.log"))?;
    let rss0 = server.rss();
    let mut at: [(f64, BTreeMap<String, f64>, u64); 2] = Default::default();
    let mut hold: [Vec<(f64, u64)>; 2] = Default::default();
    let pid = server.pid.clone();
    let report = {
        let mut hook = |p: Phase| {
            let i = usize::from(p == Phase::WindowEnd);
            at[i] = (
                procfs::cpu_seconds(&pid).unwrap_or(f64::NAN),
                procfs::thread_cpu_seconds(&pid),
                procfs::status_bytes(&pid, "VmRSS").unwrap_or(0),
            );
            hold[i] = scrape_pass_histogram().unwrap_or_default();
        };
        rt.block_on(moim_loadtest::run_with_hook(&opts, &mut hook))
            .map_err(|e| e.to_string())?
    };
    let cpu = at[1].0 - at[0].0;
    let threads = at[1]
        .1
        .iter()
        .map(|(k, v)| (k.clone(), v - at[0].1.get(k).copied().unwrap_or(0.0)))
        .collect();
    let participants = opts.publishers + opts.subscribers;
    let pkts = report.received.packets as f64;
    let rss1 = at[1].2;
    let held = histogram_delta(&hold[0], &hold[1]);
    drop(server);
    Ok(MediaResult {
        scenario: name.into(),
        participants,
        server_cpu_secs: cpu,
        server_cores: cpu / report.window_secs,
        us_per_forwarded_packet: if pkts > 0.0 {
            cpu / pkts * 1e6
        } else {
            f64::NAN
        },
        forwarded_packets_per_sec: report.received_packets_per_sec,
        server_rss_base_mib: rss0 as f64 / MIB,
        server_rss_end_mib: rss1 as f64 / MIB,
        rss_per_participant_kib: (rss1.saturating_sub(rss0)) as f64 / 1024.0 / participants as f64,
        server_threads_cpu_secs: threads,
        server_hold_p50_us: quantile_us(&held, 0.5),
        server_hold_p99_us: quantile_us(&held, 0.99),
        report,
    })
}

/// `moim_media_pass_seconds` from the server's `/metrics`: (upper bound in
/// seconds, cumulative count) per bucket.
fn scrape_pass_histogram() -> Option<Vec<(f64, u64)>> {
    use std::io::{Read, Write};
    let mut conn = TcpStream::connect("127.0.0.1:7880").ok()?;
    conn.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    conn.write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .ok()?;
    let mut body = String::new();
    conn.read_to_string(&mut body).ok()?;
    let buckets = body
        .lines()
        .filter_map(|l| l.strip_prefix("moim_media_pass_seconds_bucket{le=\""))
        .filter_map(|l| {
            let (le, count) = l.split_once("\"} ")?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, count.trim().parse().ok()?))
        })
        .collect::<Vec<_>>();
    (!buckets.is_empty()).then_some(buckets)
}

fn histogram_delta(start: &[(f64, u64)], end: &[(f64, u64)]) -> Vec<(f64, u64)> {
    end.iter()
        .map(|(le, n)| {
            let before = start.iter().find(|(l, _)| l == le).map_or(0, |(_, c)| *c);
            (*le, n.saturating_sub(before))
        })
        .collect()
}

/// The bucket bound below which `q` of the passes fell, in µs.
fn quantile_us(cumulative: &[(f64, u64)], q: f64) -> Option<f64> {
    let total = cumulative.last()?.1;
    if total == 0 {
        return None;
    }
    let want = (q * total as f64).ceil() as u64;
    cumulative
        .iter()
        .find(|(_, c)| *c >= want)
        .map(|(le, _)| le * 1e6)
}

fn run_signal(rt: &tokio::runtime::Runtime, a: &Args) -> Result<SignalResult, String> {
    let server = Server::start(a, "/tmp/moim-bench-signal.log")?;
    let rss0 = server.rss();
    let opts = SignalOptions {
        participants: a.signal,
        room_size: a.signal_room,
        hold: Duration::from_secs(a.duration.max(10)),
        ..SignalOptions::default()
    };
    let mut joined = (0u64, 0usize, 0.0);
    let mut end = (0u64, 0.0);
    let report = {
        let mut hook = |p: SignalPhase| match p {
            SignalPhase::AllJoined => {
                joined = (
                    server.rss(),
                    procfs::fd_count(&server.pid).unwrap_or(0),
                    server.cpu(),
                )
            }
            SignalPhase::HoldEnd => end = (server.rss(), server.cpu()),
        };
        rt.block_on(moim_loadtest::run_signal_only(&opts, &mut hook))
    };
    Ok(SignalResult {
        server_rss_base_mib: rss0 as f64 / MIB,
        server_rss_joined_mib: joined.0 as f64 / MIB,
        server_rss_hold_end_mib: end.0 as f64 / MIB,
        rss_per_connection_kib: end.0.saturating_sub(rss0) as f64
            / 1024.0
            / report.joined.max(1) as f64,
        server_fds: joined.1,
        server_cpu_during_hold_cores: (end.1 - joined.2) / report.hold_secs.max(1e-9),
        report,
    })
}

fn machine() -> String {
    let sh = |c: &str| {
        Command::new("sh")
            .args(["-c", c])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default()
    };
    format!(
        "- date: {}\n- cpu: {}\n- kernel: {}\n- rustc: {}\n",
        sh("date -u +%Y-%m-%dT%H:%MZ"),
        sh("lscpu | sed -n 's/^Model name: *//p' | head -1; nproc --all | sed 's/^/cores: /'")
            .replace('\n', ", "),
        sh("uname -sr"),
        sh("rustc --version"),
    )
}

fn main() {
    let a = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("moim-bench: {e}");
            std::process::exit(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("moim-bench: {e}");
            std::process::exit(1);
        }
    };
    let mut md = String::new();
    let _ = writeln!(md, "## Run\n\n{}", machine());
    let _ = writeln!(
        md,
        "server pinned to cpus {:?}; window {} s\n",
        a.server_cpus, a.duration
    );
    let _ = writeln!(
        md,
        "| scenario | participants | fwd pkt/s | server cores | server µs/pkt | RSS MiB base→end | RSS/participant KiB | loss % | latency p50 / p99 ms | server hold p50 / p99 µs (≤) | join p50 / p99 ms | first media p99 ms | tester cores |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    let mut json = Vec::new();
    for s in &a.scenarios {
        eprintln!("moim-bench: scenario {s}");
        match run_media(&rt, &a, s) {
            Ok(r) => {
                let p = &r.report;
                let _ = writeln!(
                    md,
                    "| {} | {}{} | {:.0} | {:.2} | {:.2} | {:.1}→{:.1} | {:.0} | {:.3} | {:.2} / {:.2} | {} / {} | {:.0} / {:.0} | {:.0} | {:.2} |",
                    r.scenario,
                    r.participants,
                    if p.join_failures > 0 { format!(" ({} failed)", p.join_failures) } else { String::new() },
                    r.forwarded_packets_per_sec,
                    r.server_cores,
                    r.us_per_forwarded_packet,
                    r.server_rss_base_mib,
                    r.server_rss_end_mib,
                    r.rss_per_participant_kib,
                    p.received.loss_fraction() * 100.0,
                    p.latency.p50_ms,
                    p.latency.p99_ms,
                    show_us(r.server_hold_p50_us),
                    show_us(r.server_hold_p99_us),
                    p.join.p50_ms,
                    p.join.p99_ms,
                    p.first_media.p99_ms,
                    p.tester_cpu_cores,
                );
                eprintln!("{}", p.table());
                eprintln!("server threads (cpu s): {:?}", r.server_threads_cpu_secs);
                json.push(serde_json::to_value(&r).unwrap_or_default());
            }
            Err(e) => {
                eprintln!("moim-bench: {s} failed: {e}");
                let _ = writeln!(md, "| {s} | failed: {e} |");
            }
        }
    }
    if a.signal > 0 {
        eprintln!("moim-bench: signal-only {}", a.signal);
        match run_signal(&rt, &a) {
            Ok(r) => {
                let p = &r.report;
                let _ = writeln!(
                    md,
                    "\n| signal-only | joined | failed | joins/s | join p50 / p99 ms | RSS MiB base→joined→hold end | KiB/connection | server fds | idle server cores |\n|---|---|---|---|---|---|---|---|---|\n| {} in rooms of {} | {} | {} | {:.0} | {:.1} / {:.1} | {:.1}→{:.1}→{:.1} | {:.1} | {} | {:.3} |",
                    p.requested,
                    p.room_size,
                    p.joined,
                    p.failures,
                    p.joins_per_sec,
                    p.join.p50_ms,
                    p.join.p99_ms,
                    r.server_rss_base_mib,
                    r.server_rss_joined_mib,
                    r.server_rss_hold_end_mib,
                    r.rss_per_connection_kib,
                    r.server_fds,
                    r.server_cpu_during_hold_cores,
                );
                if let Some(e) = &p.first_error {
                    let _ = writeln!(md, "\nfirst signal-only error: {e}");
                }
                json.push(serde_json::to_value(&r).unwrap_or_default());
            }
            Err(e) => {
                let _ = writeln!(md, "\nsignal-only failed: {e}");
            }
        }
    }
    println!("{md}");
    if let Some(dir) = a.out.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let _ = std::fs::write(&a.out, &md);
    let _ = std::fs::write(
        a.out.with_extension("json"),
        serde_json::to_string_pretty(&json).unwrap_or_default(),
    );
}
