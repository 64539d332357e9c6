use super::*;

const TX: [u8; 12] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];

#[test]
fn type_bits_round_trip() {
    for class in [
        Class::Request,
        Class::Indication,
        Class::Success,
        Class::Error,
    ] {
        for m in [
            method::BINDING,
            method::ALLOCATE,
            method::CHANNEL_BIND,
            0xFFF,
        ] {
            assert_eq!(split_type(join_type(class, m)), (class, m));
        }
    }
    assert_eq!(join_type(Class::Success, method::BINDING), 0x0101);
    assert_eq!(join_type(Class::Error, method::ALLOCATE), 0x0113);
    assert_eq!(join_type(Class::Indication, method::SEND), 0x0016);
}

#[test]
fn rfc5769_sample_request_integrity_and_fingerprint() {
    // RFC 5769 §2.1, short-term password "VOkJxbRl1RmTxUk/WvJxBt".
    let hex = "000100582112a442b7e7a701bc34d686fa87dfae802200105354554e2074657374\
               20636c69656e74002400046e0001ff80290008932ff9b151263b36000600096576746a3a\
               68367659202020000800149aeaa70cbfd8cb56781ef2b5b2d3f249c1b571a280280004\
               e57a3bcf";
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect();
    let msg = Message::decode(&bytes).expect("decodes");
    assert_eq!(msg.class, Class::Request);
    assert_eq!(msg.method, method::BINDING);
    assert!(msg.has_fingerprint);
    assert_eq!(msg.text(attr::USERNAME).expect("utf8"), Some("evtj:h6vY"));
    assert_eq!(
        msg.verify_integrity(b"VOkJxbRl1RmTxUk/WvJxBt"),
        Some(Integrity::Sha1)
    );
    assert_eq!(msg.verify_integrity(b"wrong"), None);
    let mut tampered = bytes.clone();
    tampered[30] ^= 1;
    assert_eq!(
        Message::decode(&tampered).err(),
        Some(DecodeError::BadFingerprint)
    );
}

#[test]
fn builder_round_trip_with_both_integrities() {
    for kind in [Integrity::Sha1, Integrity::Sha256] {
        let mut b = MessageBuilder::new(Class::Success, method::ALLOCATE, TX);
        let v4: SocketAddr = "192.0.2.1:32853".parse().expect("addr");
        let v6: SocketAddr = "[2001:db8::1]:5000".parse().expect("addr");
        b.add_xor_address(attr::XOR_RELAYED_ADDRESS, v4)
            .add_xor_address(attr::XOR_PEER_ADDRESS, v6)
            .add(attr::SOFTWARE, b"abcde")
            .add_u32(attr::LIFETIME, 600);
        let bytes = b.finish(Some((kind, b"key")), true);
        let m = Message::decode(&bytes).expect("decodes");
        assert!(m.has_fingerprint);
        assert_eq!(m.verify_integrity(b"key"), Some(kind));
        assert_eq!(m.verify_integrity(b"other"), None);
        let relayed = m.get(attr::XOR_RELAYED_ADDRESS).expect("attr");
        assert_eq!(m.xor_address(relayed), Ok(v4));
        let peer = m.get(attr::XOR_PEER_ADDRESS).expect("attr");
        assert_eq!(m.xor_address(peer), Ok(v6));
        assert_eq!(m.u32(attr::LIFETIME), Ok(Some(600)));
        assert_eq!(m.get(attr::SOFTWARE), Some(&b"abcde"[..]));
    }
}

#[test]
fn attributes_after_integrity_are_ignored() {
    let mut b = MessageBuilder::new(Class::Request, method::REFRESH, TX);
    b.add_u32(attr::LIFETIME, 1);
    let mut bytes = b.finish(Some((Integrity::Sha1, b"k")), false);
    // Append a LIFETIME after MESSAGE-INTEGRITY and fix the length.
    bytes.extend_from_slice(&[0x00, 0x0D, 0x00, 0x04, 0, 0, 0, 0]);
    let len = (bytes.len() - HEADER_LEN) as u16;
    bytes[2..4].copy_from_slice(&len.to_be_bytes());
    let m = Message::decode(&bytes).expect("decodes");
    assert_eq!(m.u32(attr::LIFETIME), Ok(Some(1)));
    assert_eq!(m.get_all(attr::LIFETIME).count(), 1);
}

#[test]
fn malformed_inputs_are_errors() {
    assert_eq!(Message::decode(&[0; 3]).err(), Some(DecodeError::TooShort));
    let ok = MessageBuilder::new(Class::Request, method::BINDING, TX).finish(None, false);
    let mut bad = ok.clone();
    bad[4] = 0;
    assert_eq!(Message::decode(&bad).err(), Some(DecodeError::NotStun));
    let mut bad = ok.clone();
    bad.push(0);
    assert_eq!(Message::decode(&bad).err(), Some(DecodeError::BadLength));
    // Attribute claiming more bytes than there are.
    let mut bad = ok.clone();
    bad.extend_from_slice(&[0x00, 0x06, 0x00, 0x10, b'a', b'b', b'c', b'd']);
    bad[2..4].copy_from_slice(&8u16.to_be_bytes());
    assert_eq!(
        Message::decode(&bad).err(),
        Some(DecodeError::TruncatedAttribute)
    );
    // Bad XOR address family.
    let m = Message::decode(&ok).expect("decodes");
    assert!(m.xor_address(&[0, 3, 0, 0, 1, 2, 3, 4]).is_err());
    assert!(m.xor_address(&[0, 1, 0]).is_err());
}

#[test]
fn channel_data_and_framing() {
    let padded = ChannelData::encode(0x4001, b"hello", true);
    assert_eq!(padded.len(), 12);
    let unpadded = ChannelData::encode(0x4001, b"hello", false);
    assert_eq!(unpadded.len(), 9);
    for buf in [&padded, &unpadded] {
        let cd = ChannelData::decode(buf).expect("decodes");
        assert_eq!((cd.channel, cd.data), (0x4001, &b"hello"[..]));
    }
    assert_eq!(ChannelData::decode(&[0x80, 0, 0, 0]), None);
    assert_eq!(ChannelData::decode(&[0x40, 0, 0, 9, 1]), None);
    assert_eq!(frame_len(&padded[..3]), Ok(None));
    assert_eq!(frame_len(&unpadded), Ok(Some(12)));
    let stun = MessageBuilder::new(Class::Request, method::BINDING, TX).finish(None, true);
    assert_eq!(frame_len(&stun), Ok(Some(stun.len())));
    assert_eq!(frame_len(&[0xC0, 0, 0, 0]), Err(DecodeError::NotStun));
}
