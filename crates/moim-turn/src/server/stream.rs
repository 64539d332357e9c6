//! TCP and TLS clients: STUN/ChannelData stream framing (RFC 8656 §11),
//! and the rules that keep idle connections from holding slots
//! (`limits.rs`).

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, trace};

use super::actor::Event;
use super::limits::{Admission, Connections};
use crate::proto::message::{frame_len, DecodeError};
use crate::proto::{ClientAddr, Transport};

/// Frames queued towards one client before new ones are dropped.
const WRITE_QUEUE: usize = 256;
const READ_CHUNK: usize = 16 * 1024;

/// Takes TCP and TLS connections accepted elsewhere: by moim's one-port
/// listener, which reads the first bytes to tell TURN from HTTPS and
/// ICE-TCP. The same limits apply as to the server's own listeners.
#[derive(Clone)]
pub struct StreamDoor {
    events: mpsc::Sender<Event>,
    conns: Connections,
    auth_deadline: Duration,
}

impl StreamDoor {
    /// Serves one client's STUN/ChannelData stream. `transport` is what the
    /// client used (TLS when the stream was decrypted by the caller);
    /// `accepted` is when the connection was accepted, so a TLS handshake
    /// done by the caller counts against the allocation deadline.
    pub fn serve<S>(
        &self,
        stream: S,
        addr: std::net::SocketAddr,
        transport: Transport,
        accepted: Instant,
    ) where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let client = ClientAddr { transport, addr };
        let admission = match self.conns.admit(client) {
            Ok(a) => a,
            Err(why) => {
                debug!(?why, "TURN connection refused");
                return;
            }
        };
        let deadline = accepted + self.auth_deadline;
        tokio::spawn(serve(
            stream,
            client,
            self.events.clone(),
            self.conns.clone(),
            admission,
            deadline,
        ));
    }
}

impl std::fmt::Debug for StreamDoor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamDoor").finish_non_exhaustive()
    }
}

pub(crate) fn door(
    events: mpsc::Sender<Event>,
    conns: Connections,
    auth_deadline: Duration,
) -> StreamDoor {
    StreamDoor {
        events,
        conns,
        auth_deadline,
    }
}

pub(crate) async fn accept_loop(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    transport: Transport,
    events: mpsc::Sender<Event>,
    conns: Connections,
    auth_deadline: Duration,
) {
    // Connection tasks live in this set, so they stop with the listener.
    let mut tasks = JoinSet::new();
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
                let client = ClientAddr { transport, addr };
                let admission = match conns.admit(client) {
                    Ok(a) => a,
                    Err(why) => {
                        debug!(?why, "TURN connection refused");
                        continue;
                    }
                };
                let _ = tcp.set_nodelay(true);
                // The handshake, the 401 round trip and the Allocate all
                // fit in this; idle or slow connections do not keep a slot.
                let deadline = Instant::now() + auth_deadline;
                let events = events.clone();
                let tls = tls.clone();
                let conns = conns.clone();
                tasks.spawn(async move {
                    match tls {
                        None => serve(tcp, client, events, conns, admission, deadline).await,
                        Some(acceptor) => {
                            match tokio::time::timeout_at(deadline, acceptor.accept(tcp)).await {
                                Ok(Ok(tls)) => {
                                    serve(tls, client, events, conns, admission, deadline).await
                                }
                                Ok(Err(e)) => debug!(error = %e, "TURN TLS handshake failed"),
                                Err(_) => debug!("TURN TLS handshake timed out"),
                            }
                        }
                    }
                });
            }
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
}

/// Takes the next complete STUN or ChannelData frame off the front of `buf`
/// (the bytes read from the stream so far); `Ok(None)` while it is still
/// incomplete, `Err` if the stream is not STUN/ChannelData.
pub fn take_frame(buf: &mut Vec<u8>) -> Result<Option<Vec<u8>>, DecodeError> {
    match frame_len(buf)? {
        Some(n) if buf.len() >= n => Ok(Some(buf.drain(..n).collect())),
        _ => Ok(None),
    }
}

async fn serve<S>(
    stream: S,
    client: ClientAddr,
    events: mpsc::Sender<Event>,
    conns: Connections,
    mut admission: Admission,
    deadline: Instant,
) where
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
        loop {
            // Hand over every complete frame in the buffer.
            loop {
                match take_frame(&mut buf) {
                    Ok(Some(data)) => {
                        let ev = Event::Client { from: client, data };
                        if events.send(ev).await.is_err() {
                            return;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        debug!(error = %e, "TURN stream is not STUN: closing");
                        return;
                    }
                }
            }
            match rd.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    };
    let watchdog = async {
        tokio::time::sleep_until(deadline).await;
        if conns.is_pending(client) {
            debug!("TURN stream has no allocation after the deadline: closing");
            return;
        }
        std::future::pending::<()>().await
    };
    let evicted = async {
        // Err means the sender was dropped: the connection authenticated
        // and can no longer be evicted.
        if (&mut admission.evicted).await.is_ok() {
            debug!("TURN stream without allocation evicted to make room: closing");
            return;
        }
        std::future::pending::<()>().await
    };
    // Any of these ending ends the connection.
    tokio::select! {
        () = writer => {}
        () = reader => {}
        () = watchdog => {}
        () = evicted => {}
    }
    trace!(?client, "TURN stream closed");
    let _ = events.send(Event::StreamClosed { client }).await;
    drop(admission);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_taken_whole_and_only_when_complete() {
        // A 20-byte STUN header with an empty body, then ChannelData of 5
        // bytes padded to 8, then the first 3 bytes of another frame.
        let mut stun = vec![0x00, 0x01, 0, 0, 0x21, 0x12, 0xa4, 0x42];
        stun.extend_from_slice(&[7; 12]);
        let chan = [0x40, 0x00, 0, 5, 1, 2, 3, 4, 5, 0, 0, 0];
        let mut buf = [stun.as_slice(), &chan, &[0x40, 0x00, 0]].concat();
        assert_eq!(take_frame(&mut buf), Ok(Some(stun)));
        assert_eq!(take_frame(&mut buf), Ok(Some(chan.to_vec())));
        assert_eq!(take_frame(&mut buf), Ok(None));
        assert_eq!(buf, [0x40, 0x00, 0]);
        // Header complete, body not yet.
        buf.extend_from_slice(&[4, 9, 9]);
        assert_eq!(take_frame(&mut buf), Ok(None));
        assert_eq!(buf.len(), 6);
        // The first two bits say STUN (00) or ChannelData (01); anything
        // else is neither, whatever follows.
        let mut neither = vec![0xc0, 0x03, 0x01, 0x00, 0x10];
        assert_eq!(take_frame(&mut neither), Err(DecodeError::NotStun));
    }
}
