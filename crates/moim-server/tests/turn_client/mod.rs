//! A small TURN client over UDP for tests: Allocate with long-term
//! credentials, CreatePermission, ChannelBind and Send, each answered
//! with the server's error code (0 on success).

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use moim_turn::proto::message::{attr, method, Class, Integrity, Message, MessageBuilder};
use tokio::net::UdpSocket;

/// moim's TURN realm.
const REALM: &str = "moim";
const ANSWER_WITHIN: Duration = Duration::from_secs(5);

pub struct TurnClient {
    sock: UdpSocket,
    server: SocketAddr,
    username: String,
    key: [u8; 16],
    nonce: String,
    tx: u32,
}

impl TurnClient {
    /// Allocates a UDP relay on `server` with REST credentials signed by
    /// `secret`; panics with the error code if the server refuses.
    pub async fn allocate(server: SocketAddr, secret: &str, identity: &str) -> Self {
        let (username, password) = moim_turn::rest_credentials(
            secret,
            identity,
            Duration::from_secs(600),
            std::time::SystemTime::now(),
        );
        let local = if server.is_ipv6() {
            "[::1]:0"
        } else {
            "127.0.0.1:0"
        };
        let sock = UdpSocket::bind(local).await.expect("bind test socket");
        let key = moim_turn::proto::long_term_key(&username, REALM, &password);
        let mut c = TurnClient {
            sock,
            server,
            username,
            key,
            nonce: String::new(),
            tx: 0,
        };
        let code = c
            .request(method::ALLOCATE, |b| {
                b.add(attr::REQUESTED_TRANSPORT, &[17, 0, 0, 0]);
            })
            .await;
        assert_eq!(code, 0, "Allocate refused with {code}");
        c
    }

    /// A signed request; learns the nonce from a 401/438 and retries once.
    pub async fn request(&mut self, method: u16, f: impl Fn(&mut MessageBuilder)) -> u16 {
        for _ in 0..3 {
            self.tx += 1;
            let mut tx = [0u8; 12];
            tx[..4].copy_from_slice(&self.tx.to_be_bytes());
            let mut b = MessageBuilder::new(Class::Request, method, tx);
            f(&mut b);
            let signed = !self.nonce.is_empty();
            if signed {
                b.add(attr::USERNAME, self.username.as_bytes())
                    .add(attr::REALM, REALM.as_bytes())
                    .add(attr::NONCE, self.nonce.as_bytes());
            }
            let key = self.key;
            let req = b.finish(signed.then_some((Integrity::Sha1, &key[..])), true);
            self.sock.send_to(&req, self.server).await.expect("send");
            let mut buf = vec![0u8; 4096];
            let resp = loop {
                let n = tokio::time::timeout(ANSWER_WITHIN, self.sock.recv(&mut buf))
                    .await
                    .expect("TURN answers within 5 s")
                    .expect("recv");
                if let Ok(m) = Message::decode(&buf[..n]) {
                    if m.transaction_id == tx {
                        break buf[..n].to_vec();
                    }
                }
            };
            let m = Message::decode(&resp).expect("decoded above");
            let Some(err) = m.get(attr::ERROR_CODE) else {
                return 0;
            };
            let code = u16::from(err[2]) * 100 + u16::from(err[3]);
            if code == 401 || code == 438 {
                self.nonce = m
                    .text(attr::NONCE)
                    .ok()
                    .flatten()
                    .unwrap_or_default()
                    .to_owned();
                continue;
            }
            return code;
        }
        panic!("challenge loop with {}", self.server);
    }

    pub async fn create_permission(&mut self, peer: SocketAddr) -> u16 {
        self.request(method::CREATE_PERMISSION, |b| {
            b.add_xor_address(attr::XOR_PEER_ADDRESS, peer);
        })
        .await
    }

    pub async fn channel_bind(&mut self, channel: u16, peer: SocketAddr) -> u16 {
        self.request(method::CHANNEL_BIND, |b| {
            b.add(
                attr::CHANNEL_NUMBER,
                &[(channel >> 8) as u8, channel as u8, 0, 0],
            )
            .add_xor_address(attr::XOR_PEER_ADDRESS, peer);
        })
        .await
    }

    /// A Send indication: relayed only if the server lets `peer` through.
    pub async fn send(&mut self, peer: SocketAddr, data: &[u8]) {
        self.tx += 1;
        let mut tx = [0xaa; 12];
        tx[..4].copy_from_slice(&self.tx.to_be_bytes());
        let mut b = MessageBuilder::new(Class::Indication, method::SEND, tx);
        b.add_xor_address(attr::XOR_PEER_ADDRESS, peer)
            .add(attr::DATA, data);
        let ind = b.finish(None, true);
        self.sock.send_to(&ind, self.server).await.expect("send");
    }
}
