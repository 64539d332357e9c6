//! A client that sends thousands of malformed signal frames gets an answer
//! to each, but the operator's log gets the first few and then a count: one
//! client cannot flood it. (Its own test binary: it captures the log.)

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

#[derive(Clone, Default)]
struct CapturedLog(Arc<Mutex<Vec<u8>>>);

impl CapturedLog {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("log lock")).into_owned()
    }
}

impl Write for CapturedLog {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

const FLOOD: usize = 2_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_malformed_frames_leave_a_few_log_lines_and_a_count() {
    let log = CapturedLog::default();
    let writer = log.clone();
    tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .init();

    let server = common::start().await;
    let url = format!(
        "{}/rtc?access_token={}",
        server.url,
        common::token("noisy", "mallory")
    );
    let (ws, _) = tokio_tungstenite::connect_async(url).await.expect("join");
    let (mut tx, mut rx) = ws.split();
    let reader = tokio::spawn(async move {
        let mut answers = 0usize;
        while let Ok(Some(Ok(m))) = tokio::time::timeout(Duration::from_secs(10), rx.next()).await {
            if matches!(m, Message::Binary(_)) {
                answers += 1;
            }
            if answers > FLOOD {
                break;
            }
        }
        answers
    });
    for _ in 0..FLOOD {
        tx.send(Message::Binary(vec![0xff, 0xff, 0xff, 0x01].into()))
            .await
            .expect("send");
    }
    // The JoinResponse plus one RequestResponse per malformed frame.
    let answers = reader.await.expect("reader");
    assert_eq!(answers, FLOOD + 1, "every malformed frame is answered");
    let _ = tx.send(Message::Close(None)).await;
    drop(tx);

    let counted = common::eventually(Duration::from_secs(5), || {
        log.text()
            .contains(&format!("{FLOOD} malformed frames in all"))
    })
    .await;
    let text = log.text();
    assert!(
        counted,
        "the total is logged when the connection ends:\n{text}"
    );
    let lines = text
        .lines()
        .filter(|l| l.contains("malformed signal frame ignored"))
        .count();
    assert_eq!(lines, 5, "only the first few frames are logged one by one");
    assert!(
        text.lines().count() < 50,
        "the whole flood left a short log:\n{text}"
    );
}
