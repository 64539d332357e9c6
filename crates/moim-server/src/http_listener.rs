//! The HTTP listener: accepts TCP, does TLS when configured, and hands each
//! connection to hyper. Before hyper sees a connection, the first request
//! line is read here, because hyper answers a request line it finds too long
//! with a bare `414` and no body, and the usual cause (an access token that
//! carries too much) deserves a sentence.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info};

use crate::port_mux::{Doors, Mux};

/// The longest first request line moim reads. hyper refuses URIs over
/// 65,534 bytes; a line under this bound always holds a URI hyper accepts.
const MAX_REQUEST_LINE: usize = 60 * 1024;

/// How long a new connection may take to send its first request line. Like
/// hyper's own header timeout: browsers open connections ahead of use.
const FIRST_LINE_TIMEOUT: Duration = Duration::from_secs(30);

const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What every connection of the listener shares.
struct Shared {
    app: Router,
    acceptor: Option<TlsAcceptor>,
    trusted_proxies: Arc<[ipnet::IpNet]>,
    /// With one port for everything: where TURN and ICE-TCP go.
    mux: Option<Mux>,
}

/// Accepts connections until the process ends. With `doors`, the port is
/// shared (`--single-port`): each connection's first bytes say whether it
/// is HTTP(S) or goes to TURN or ICE-TCP.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    trusted_proxies: Arc<[ipnet::IpNet]>,
    doors: Option<Doors>,
) -> io::Result<()> {
    let shared = Arc::new(Shared {
        app,
        acceptor: tls.map(TlsAcceptor::from),
        trusted_proxies,
        mux: doors.map(Mux::new),
    });
    loop {
        let (tcp, remote) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                debug!("HTTP accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        tokio::spawn(shared.clone().connection(tcp, remote));
    }
}

impl Shared {
    async fn connection(self: Arc<Self>, tcp: TcpStream, remote: SocketAddr) {
        let accepted = tokio::time::Instant::now();
        let tcp = match &self.mux {
            Some(mux) => match mux.first_look(tcp, remote, accepted).await {
                Some(tcp) => tcp,
                None => return,
            },
            None => tcp,
        };
        let (app, trusted) = (self.app.clone(), self.trusted_proxies.clone());
        let Some(acceptor) = &self.acceptor else {
            return serve_connection(tcp, remote, app, trusted).await;
        };
        let tls = match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => return debug!(%remote, "TLS handshake failed: {e}"),
            Err(_) => return debug!(%remote, "TLS handshake did not finish in time"),
        };
        if is_acme_validation(&tls) {
            return debug!(%remote, "answered an ACME TLS-ALPN-01 validation");
        }
        match &self.mux {
            Some(mux) => {
                if let Some(https) = mux.inside_tls(tls, remote, accepted).await {
                    serve_connection(https, remote, app, trusted).await;
                }
            }
            None => serve_connection(tls, remote, app, trusted).await,
        }
    }
}

/// RFC 8737: a validation's connection ends after the handshake.
fn is_acme_validation<S>(tls: &tokio_rustls::server::TlsStream<S>) -> bool {
    tls.get_ref().1.alpn_protocol() == Some(crate::tls::ACME_TLS_ALPN)
}

async fn serve_connection<S>(
    mut io: S,
    remote: SocketAddr,
    app: Router,
    trusted: Arc<[ipnet::IpNet]>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let head = match tokio::time::timeout(FIRST_LINE_TIMEOUT, read_first_line(&mut io)).await {
        Ok(Ok(FirstLine::Fits(head))) => head,
        Ok(Ok(FirstLine::TooLong)) => {
            info!(
                %remote,
                "refused a request whose first line is over {MAX_REQUEST_LINE} bytes (414); \
                 a client that puts a large access token in the URL should shrink the token"
            );
            refuse_too_long(io).await;
            return;
        }
        Ok(Err(e)) => {
            debug!(%remote, "HTTP connection ended before its first request: {e}");
            return;
        }
        Err(_) => return,
    };
    let io = Replay::new(head, io);
    // Handlers that rate-limit by address read the client's as axum's
    // ConnectInfo: behind a trusted proxy, the one it forwarded for.
    let service = TowerToHyperService::new(tower::util::MapRequest::new(
        app,
        move |mut req: axum::http::Request<_>| {
            let client = crate::forwarded::client_ip(remote.ip(), req.headers(), &trusted);
            let client = if client == remote.ip() {
                remote
            } else {
                SocketAddr::new(client, 0)
            };
            req.extensions_mut()
                .insert(axum::extract::ConnectInfo(client));
            req.extensions_mut()
                .insert(crate::forwarded::PeerAddr(remote));
            req
        },
    ));
    if let Err(e) = Builder::new(TokioExecutor::new())
        .serve_connection_with_upgrades(TokioIo::new(io), service)
        .await
    {
        debug!(%remote, "HTTP connection ended: {e}");
    }
}

enum FirstLine {
    /// Everything read so far, the whole first line among it.
    Fits(Vec<u8>),
    TooLong,
}

/// Reads until the first line ends. What is read beyond it is kept and
/// replayed to hyper.
async fn read_first_line<S: AsyncRead + Unpin>(io: &mut S) -> io::Result<FirstLine> {
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        let n = io.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let scanned = head.len();
        head.extend_from_slice(&chunk[..n]);
        if let Some(pos) = head[scanned..].iter().position(|&b| b == b'\n') {
            if scanned + pos > MAX_REQUEST_LINE {
                return Ok(FirstLine::TooLong);
            }
            return Ok(FirstLine::Fits(head));
        }
        if head.len() > MAX_REQUEST_LINE {
            return Ok(FirstLine::TooLong);
        }
    }
}

/// The text a client gets instead of hyper's empty 414.
fn too_long_text() -> String {
    format!(
        "request line too long: moim reads at most {MAX_REQUEST_LINE} bytes. If the URL carries \
         an access token, the token is too large: keep participant metadata and attributes \
         small in the token (set more with UpdateParticipant), or send the token in an \
         \"Authorization: Bearer\" header instead of the URL.\n"
    )
}

async fn refuse_too_long<S: AsyncRead + AsyncWrite + Unpin>(mut io: S) {
    let text = too_long_text();
    let response = format!(
        "HTTP/1.1 414 URI Too Long\r\ncontent-type: text/plain; charset=utf-8\r\n\
         content-length: {}\r\naccess-control-allow-origin: *\r\nconnection: close\r\n\
         server: {}\r\n\r\n{text}",
        text.len(),
        crate::SERVER_VERSION,
    );
    if io.write_all(response.as_bytes()).await.is_err() {
        return;
    }
    let _ = io.shutdown().await;
    // Closing with the rest of the request unread makes the kernel send a
    // reset, which can destroy the response before the client reads it. Read
    // (and drop) a bounded amount first.
    let mut sink = [0u8; 8192];
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        let mut total = 0usize;
        while total < 1 << 20 {
            match io.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    })
    .await;
}

/// A stream whose first bytes were already read: they are given back first.
pub(crate) struct Replay<S> {
    head: Vec<u8>,
    pos: usize,
    inner: S,
}

impl<S> Replay<S> {
    pub(crate) fn new(head: Vec<u8>, inner: S) -> Self {
        Self {
            head,
            pos: 0,
            inner,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Replay<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.pos < this.head.len() {
            let n = buf.remaining().min(this.head.len() - this.pos);
            buf.put_slice(&this.head[this.pos..this.pos + n]);
            this.pos += n;
            if this.pos == this.head.len() {
                this.head = Vec::new();
                this.pos = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Replay<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_short_line_is_kept_with_what_follows() {
        const REQUEST: &[u8] = b"GET /rtc?x=1 HTTP/1.1\r\nHost: a\r\n\r\n";
        let (mut client, mut server) = tokio::io::duplex(1 << 17);
        client.write_all(REQUEST).await.expect("write");
        let FirstLine::Fits(head) = read_first_line(&mut server).await.expect("read") else {
            panic!("a short line must fit");
        };
        let mut replay = Replay::new(head, server);
        let mut back = vec![0u8; REQUEST.len()];
        replay.read_exact(&mut back).await.expect("replay");
        assert_eq!(&back, REQUEST);
    }

    #[tokio::test]
    async fn a_line_over_the_limit_is_refused_even_when_it_ends() {
        let (mut client, mut server) = tokio::io::duplex(1 << 18);
        let mut line = b"GET /rtc?access_token=".to_vec();
        line.resize(MAX_REQUEST_LINE + 10, b'a');
        line.extend_from_slice(b" HTTP/1.1\r\n\r\n");
        client.write_all(&line).await.expect("write");
        assert!(matches!(
            read_first_line(&mut server).await.expect("read"),
            FirstLine::TooLong
        ));
    }

    #[tokio::test]
    async fn a_line_that_never_ends_is_refused_at_the_limit() {
        let (mut client, mut server) = tokio::io::duplex(1 << 18);
        let writer = tokio::spawn(async move {
            let junk = vec![b'a'; 4096];
            // The reader stops at the limit; the rest may not be read.
            for _ in 0..32 {
                if client.write_all(&junk).await.is_err() {
                    break;
                }
            }
        });
        assert!(matches!(
            read_first_line(&mut server).await.expect("read"),
            FirstLine::TooLong
        ));
        drop(server);
        let _ = writer.await;
    }
}
