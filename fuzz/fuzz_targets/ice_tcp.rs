//! ICE-TCP (RFC 4571): the media plane's `read_frame` on an arbitrary byte
//! stream, and the first frame's STUN USERNAME lookup that routes the
//! connection to a shard (`stun::local_ufrag`, also used on every UDP
//! datagram from an unknown address).
#![no_main]

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use libfuzzer_sys::fuzz_target;
use moim_sfu::fuzzing::read_frame;
use moim_sfu::stun;

/// Reading from a byte slice never waits, so one poll finishes the read.
fn now<T>(fut: impl Future<Output = T>) -> T {
    let mut cx = Context::from_waker(Waker::noop());
    match pin!(fut).poll(&mut cx) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("a read from a slice waited"),
    }
}

fn check_ufrag(frame: &[u8]) {
    if let Some(ufrag) = stun::local_ufrag(frame) {
        assert!(stun::is_stun(frame));
        assert!(!ufrag.contains(':'));
        // Borrowed from inside the frame's attributes.
        let start = ufrag.as_ptr() as usize - frame.as_ptr() as usize;
        assert!(start >= 24 && start + ufrag.len() <= frame.len());
    }
}

fuzz_target!(|data: &[u8]| {
    check_ufrag(data);
    let mut reader = data;
    let mut consumed = 0;
    while let Ok(frame) = now(read_frame(&mut reader)) {
        let len = u16::from_be_bytes([data[consumed], data[consumed + 1]]);
        assert_eq!(usize::from(len), frame.len());
        assert_eq!(&data[consumed + 2..consumed + 2 + frame.len()], frame.as_slice());
        consumed += 2 + frame.len();
        check_ufrag(&frame);
    }
    assert!(consumed <= data.len());
});
