//! `moim serve --dev` as an operator runs it: the real binary on loopback
//! with OS-chosen ports, its log read line by line.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const MOIM: &str = env!("CARGO_BIN_EXE_moim");

pub struct Moim {
    pub child: Child,
    pub http: SocketAddr,
    /// The server's log lines, as they come.
    pub log: mpsc::Receiver<String>,
}

impl Moim {
    /// `moim serve --dev --no-turn` with `env` added to its environment.
    pub fn serve(env: &[(&str, &str)]) -> Moim {
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
            .env("MOIM_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("moim serve starts");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, log) = mpsc::channel();
        // Read on a thread for the whole run, so the server never blocks on
        // a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        let http = loop {
            let line = log
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
        Moim { child, http, log }
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}", self.http)
    }

    pub fn pid(&self) -> String {
        self.child.id().to_string()
    }
}

impl Drop for Moim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
