//! The one thing the packet demux needs from STUN: the local ICE ufrag in a
//! Binding request's USERNAME ("<server ufrag>:<client ufrag>").

/// RFC 7983 demultiplexing: STUN messages start with 0 or 1.
pub fn is_stun(packet: &[u8]) -> bool {
    packet.len() >= 20 && packet[0] < 2 && packet[4..8] == [0x21, 0x12, 0xa4, 0x42]
}

/// The server-side ufrag, if this is a STUN message with a USERNAME.
pub fn local_ufrag(packet: &[u8]) -> Option<&str> {
    if !is_stun(packet) {
        return None;
    }
    let body_len = u16::from_be_bytes([packet[2], packet[3]]) as usize;
    let body = packet.get(20..20 + body_len)?;
    let mut i = 0;
    while i + 4 <= body.len() {
        let kind = u16::from_be_bytes([body[i], body[i + 1]]);
        let len = u16::from_be_bytes([body[i + 2], body[i + 3]]) as usize;
        let value = body.get(i + 4..i + 4 + len)?;
        if kind == 0x0006 {
            let username = std::str::from_utf8(value).ok()?;
            return username.split(':').next();
        }
        i += 4 + len.div_ceil(4) * 4;
    }
    None
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A binding request carrying USERNAME `username`.
    pub(crate) fn binding(username: &[u8]) -> Vec<u8> {
        let mut attr = vec![0x00, 0x06, 0, username.len() as u8];
        attr.extend_from_slice(username);
        while attr.len() % 4 != 0 {
            attr.push(0);
        }
        let mut m = vec![0x00, 0x01];
        m.extend_from_slice(&(attr.len() as u16).to_be_bytes());
        m.extend_from_slice(&[0x21, 0x12, 0xa4, 0x42]);
        m.extend_from_slice(&[7; 12]);
        m.extend_from_slice(&attr);
        m
    }

    #[test]
    fn finds_the_server_ufrag() {
        assert_eq!(local_ufrag(&binding(b"srv1:cli")), Some("srv1"));
    }

    #[test]
    fn garbage_yields_none() {
        assert_eq!(local_ufrag(&[]), None);
        assert_eq!(local_ufrag(&[0x80; 40]), None);
        let mut truncated = binding(b"srv1:cli");
        truncated[3] = 200; // claims a longer body than present
        assert_eq!(local_ufrag(&truncated), None);
    }
}
