//! Many datagrams per system call: `sendmmsg` for what a shard transmits,
//! `recvmmsg` for what shard 0 reads (see `demux.rs`).
//!
//! Profiling the 1→200 fan-out showed one `sendto` per packet per subscriber
//! as the largest single cost on the server (a quarter of its CPU). The
//! kernel still does its per-datagram work; a batch saves the system calls
//! (measured: ~24 datagrams per `sendmmsg` at 1→50).
//!
//! Neither batch allocates on the packet path: the send batch holds the
//! datagrams str0m already allocated, the receive batch reuses its buffers.
//! They hold raw `mmsghdr` pointers and are therefore not `Send`: build them
//! on the thread that uses them.

use std::io::{self, IoSlice, IoSliceMut};
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::os::fd::AsRawFd;

use nix::errno::Errno;
use nix::sys::socket::{recvmmsg, sendmmsg, MsgFlags, MultiHeaders, SockaddrStorage};

/// Datagrams per system call. 32 covers a video frame's packets to one peer,
/// or one packet to 32 subscribers.
pub(crate) const BATCH: usize = 32;

/// Room for one received datagram; larger ones are truncated, as they would
/// be by any MTU on the way.
const SLOT: usize = 2048;

/// Outgoing datagrams collected during one pass of a shard's loop. It takes
/// str0m's datagrams by value, so batching costs no copy.
pub(crate) struct SendBatch {
    datagrams: Vec<Vec<u8>>,
    addrs: [Option<SockaddrStorage>; BATCH],
    headers: MultiHeaders<SockaddrStorage>,
}

impl SendBatch {
    pub fn new() -> Self {
        Self {
            datagrams: Vec::with_capacity(BATCH),
            addrs: [None; BATCH],
            headers: MultiHeaders::preallocate(BATCH, None),
        }
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.datagrams.is_empty()
    }

    /// Queues a datagram; sends the batch first when it is full.
    pub fn push(&mut self, socket: &UdpSocket, datagram: Vec<u8>, destination: SocketAddr) {
        if self.datagrams.len() == BATCH {
            self.flush(socket);
        }
        self.addrs[self.datagrams.len()] = Some(SockaddrStorage::from(destination));
        self.datagrams.push(datagram);
    }

    /// Sends everything queued. A datagram the kernel refuses (an
    /// unreachable destination, say) is dropped and the rest still go.
    pub fn flush(&mut self, socket: &UdpSocket) {
        let mut start = 0;
        while start < self.datagrams.len() {
            match self.send_from(socket, start) {
                Ok(0) => start += 1,
                Ok(sent) => start += sent,
                Err(Errno::EINTR) => {}
                Err(e) => {
                    tracing::trace!(destination = ?self.addrs[start], "udp send failed: {e}");
                    start += 1;
                }
            }
        }
        self.datagrams.clear();
    }

    fn send_from(&mut self, socket: &UdpSocket, start: usize) -> Result<usize, Errno> {
        let end = self.datagrams.len();
        let datagrams = &self.datagrams;
        let iovs: [[IoSlice<'_>; 1]; BATCH] = std::array::from_fn(|i| {
            [IoSlice::new(
                datagrams.get(i).map_or(&[][..], |d| d.as_slice()),
            )]
        });
        let sent = sendmmsg(
            socket.as_raw_fd(),
            &mut self.headers,
            &iovs[start..end],
            &self.addrs[start..end],
            [],
            MsgFlags::empty(),
        )?;
        Ok(sent.count())
    }
}

/// Incoming datagrams from one `recvmmsg`: waits for the first, then takes
/// whatever else is already queued, up to [`BATCH`].
pub(crate) struct RecvBatch {
    bufs: Vec<Vec<u8>>,
    got: [(usize, Option<SocketAddr>); BATCH],
    headers: MultiHeaders<SockaddrStorage>,
}

impl RecvBatch {
    pub fn new() -> Self {
        Self {
            bufs: (0..BATCH).map(|_| vec![0u8; SLOT]).collect(),
            got: [(0, None); BATCH],
            headers: MultiHeaders::preallocate(BATCH, None),
        }
    }

    /// Blocks until at least one datagram arrives; returns how many did.
    pub fn recv(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        let mut slices: [[IoSliceMut<'_>; 1]; BATCH] = {
            let mut it = self.bufs.iter_mut();
            std::array::from_fn(|_| match it.next() {
                Some(b) => [IoSliceMut::new(b.as_mut_slice())],
                None => [IoSliceMut::new(&mut [])],
            })
        };
        let results = recvmmsg(
            socket.as_raw_fd(),
            &mut self.headers,
            slices.iter_mut(),
            MsgFlags::MSG_WAITFORONE,
            None,
        )
        .map_err(io::Error::from)?;
        let mut n = 0;
        for (slot, msg) in self.got.iter_mut().zip(results) {
            *slot = (msg.bytes, msg.address.and_then(|a| to_std(&a)));
            n += 1;
        }
        Ok(n)
    }

    /// The `i`th datagram of the last [`recv`](Self::recv): its source and bytes.
    pub fn datagram(&self, i: usize) -> Option<(SocketAddr, &[u8])> {
        let (len, source) = *self.got.get(i)?;
        Some((source?, &self.bufs[i][..len]))
    }

    /// Hands out the `i`th datagram's buffer, trimmed to its length, and puts
    /// `spare` in its place for the next call.
    pub fn take(&mut self, i: usize, mut spare: Vec<u8>) -> Vec<u8> {
        let len = self.got[i].0;
        self.got[i] = (0, None);
        spare.resize(SLOT, 0);
        let mut buf = std::mem::replace(&mut self.bufs[i], spare);
        buf.truncate(len);
        buf
    }
}

fn to_std(addr: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = addr.as_sockaddr_in() {
        return Some(SocketAddr::V4(SocketAddrV4::from(*v4)));
    }
    addr.as_sockaddr_in6()
        .map(|v6| SocketAddr::V6(SocketAddrV6::from(*v6)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn pair() -> (UdpSocket, UdpSocket) {
        let a = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let b = UdpSocket::bind("127.0.0.1:0").expect("bind");
        b.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        (a, b)
    }

    #[test]
    fn a_batch_of_datagrams_arrives_whole_and_in_order() {
        let (tx, rx) = pair();
        let to = rx.local_addr().expect("addr");
        let mut batch = SendBatch::new();
        // More than one batch, so a full batch sends itself.
        for i in 0..(BATCH + 5) as u32 {
            batch.push(&tx, i.to_be_bytes().repeat(100), to);
        }
        batch.flush(&tx);
        assert!(batch.is_empty());

        let mut recv = RecvBatch::new();
        let mut seen = Vec::new();
        while seen.len() < BATCH + 5 {
            let n = recv.recv(&rx).expect("recv");
            assert!(n >= 1);
            for i in 0..n {
                let (source, bytes) = recv.datagram(i).expect("datagram");
                assert_eq!(source, tx.local_addr().expect("addr"));
                assert_eq!(bytes.len(), 400);
                let buf = recv.take(i, Vec::new());
                assert_eq!(buf.len(), 400);
                seen.push(u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]));
            }
        }
        assert_eq!(seen, (0..(BATCH + 5) as u32).collect::<Vec<_>>());
    }

    #[test]
    fn an_unreachable_destination_does_not_stop_the_rest() {
        let (tx, rx) = pair();
        let to = rx.local_addr().expect("addr");
        let mut batch = SendBatch::new();
        batch.push(&tx, b"first".to_vec(), to);
        // An IPv6 destination on an IPv4 socket is refused by the kernel.
        batch.push(&tx, b"refused".to_vec(), "[::1]:9".parse().expect("addr"));
        batch.push(&tx, b"third".to_vec(), to);
        batch.flush(&tx);
        let mut buf = [0u8; 64];
        let (n, _) = rx.recv_from(&mut buf).expect("first");
        assert_eq!(&buf[..n], b"first");
        let (n, _) = rx.recv_from(&mut buf).expect("third");
        assert_eq!(&buf[..n], b"third");
    }
}
