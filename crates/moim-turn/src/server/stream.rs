//! TCP and TLS clients: STUN/ChannelData stream framing (RFC 8656 §11).

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, trace};

use super::actor::Event;
use crate::proto::message::frame_len;
use crate::proto::{ClientAddr, Transport};

/// A TLS handshake must finish within this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection must send its first frame within this, so idle sockets
/// cannot hold connection slots.
const FIRST_FRAME_TIMEOUT: Duration = Duration::from_secs(10);
/// Frames queued towards one client before new ones are dropped.
const WRITE_QUEUE: usize = 256;
const READ_CHUNK: usize = 16 * 1024;

pub(crate) async fn accept_loop(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    transport: Transport,
    events: mpsc::Sender<Event>,
    limit: Arc<Semaphore>,
) {
    // Connection tasks live in this set, so they stop with the listener.
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (tcp, addr) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        debug!(error = %e, "TURN accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Ok(permit) = limit.clone().try_acquire_owned() else {
                    debug!("TURN connection limit reached: refusing");
                    continue;
                };
                let _ = tcp.set_nodelay(true);
                let client = ClientAddr { transport, addr };
                let events = events.clone();
                let tls = tls.clone();
                conns.spawn(async move {
                    let _permit = permit;
                    match tls {
                        None => serve(tcp, client, events).await,
                        Some(acceptor) => {
                            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                                Ok(Ok(stream)) => serve(stream, client, events).await,
                                Ok(Err(e)) => debug!(error = %e, "TURN TLS handshake failed"),
                                Err(_) => debug!("TURN TLS handshake timed out"),
                            }
                        }
                    }
                });
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

async fn serve<S>(stream: S, client: ClientAddr, events: mpsc::Sender<Event>)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut rd, mut wr) = tokio::io::split(stream);
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(WRITE_QUEUE);
    if events.send(Event::StreamOpen { client, tx }).await.is_err() {
        return;
    }
    let writer = async move {
        while let Some(frame) = rx.recv().await {
            if wr.write_all(&frame).await.is_err() {
                break;
            }
        }
        let _ = wr.shutdown().await;
    };
    let reader = async {
        let mut buf: Vec<u8> = Vec::with_capacity(READ_CHUNK);
        let mut chunk = vec![0u8; READ_CHUNK];
        let mut seen_frame = false;
        loop {
            // Hand over every complete frame in the buffer.
            loop {
                match frame_len(&buf) {
                    Ok(Some(n)) if buf.len() >= n => {
                        seen_frame = true;
                        let data: Vec<u8> = buf.drain(..n).collect();
                        let ev = Event::Client { from: client, data };
                        if events.send(ev).await.is_err() {
                            return;
                        }
                    }
                    Ok(_) => break,
                    Err(e) => {
                        debug!(error = %e, "TURN stream is not STUN: closing");
                        return;
                    }
                }
            }
            let read = if seen_frame {
                rd.read(&mut chunk).await
            } else {
                match tokio::time::timeout(FIRST_FRAME_TIMEOUT, rd.read(&mut chunk)).await {
                    Ok(r) => r,
                    Err(_) => {
                        debug!("TURN stream sent no frame in time: closing");
                        return;
                    }
                }
            };
            match read {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    };
    // Either side ending ends the connection.
    tokio::select! {
        () = writer => {}
        () = reader => {}
    }
    trace!(?client, "TURN stream closed");
    let _ = events.send(Event::StreamClosed { client }).await;
}
