use super::*;

fn v2(command: u8, family: u8, payload: &[u8]) -> Vec<u8> {
    let mut h = V2_SIGNATURE.to_vec();
    h.push(command);
    h.push(family);
    h.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    h.extend_from_slice(payload);
    h
}

fn v4_addrs() -> Vec<u8> {
    let mut a = vec![192, 0, 2, 7, 10, 0, 0, 1];
    a.extend_from_slice(&4711u16.to_be_bytes());
    a.extend_from_slice(&8080u16.to_be_bytes());
    a
}

fn done(buf: &[u8], mode: ProxyProtocol) -> (ProxyHeader, usize) {
    match parse(buf, mode) {
        Ok(Parsed::Complete { header, len }) => (header, len),
        other => panic!("{:?}: {other:?}", String::from_utf8_lossy(buf)),
    }
}

fn bad(buf: &[u8], mode: ProxyProtocol) -> ProxyError {
    match parse(buf, mode) {
        Err(e) => e,
        other => panic!("{:?} accepted: {other:?}", String::from_utf8_lossy(buf)),
    }
}

fn addr(s: &str) -> Option<SocketAddr> {
    Some(s.parse().unwrap())
}

#[test]
fn v1_tcp4_tcp6_and_unknown() {
    let mode = ProxyProtocol::V1;
    let line = b"PROXY TCP4 192.0.2.7 10.0.0.1 4711 8080\r\nGET / HTTP/1.1\r\n";
    let (h, len) = done(line, mode);
    assert_eq!(h.source, addr("192.0.2.7:4711"));
    assert_eq!(h.version, Version::V1);
    assert_eq!(&line[len..len + 3], b"GET");
    let (h, _) = done(b"PROXY TCP6 2001:db8::7 2001:db8::1 65535 0\r\n", mode);
    assert_eq!(h.source, addr("[2001:db8::7]:65535"));
    let (h, len) = done(b"PROXY UNKNOWN\r\n", mode);
    assert_eq!((h.source, len), (None, 15));
    let (h, _) = done(b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n", mode);
    assert_eq!(h.source, None);
    // The longest line the spec allows is accepted.
    let mut long = b"PROXY UNKNOWN ".to_vec();
    long.resize(105, b'x');
    long.extend_from_slice(b"\r\n");
    assert_eq!(done(&long, mode).1, 107);
}

#[test]
fn v1_is_incomplete_until_crlf() {
    let line = b"PROXY TCP4 192.0.2.7 10.0.0.1 4711 8080\r\n";
    for n in 0..line.len() {
        assert_eq!(
            parse(&line[..n], ProxyProtocol::Any).unwrap(),
            Parsed::Incomplete,
            "{n}"
        );
    }
}

#[test]
fn v1_bad_lines_are_refused() {
    let mode = ProxyProtocol::V1;
    for line in [
        &b"GET / HTTP/1.1\r\n"[..],
        b"PROXY TCP5 1.2.3.4 1.2.3.4 1 2\r\n",
        b"PROXY TCP4 1.2.3.4 1.2.3.4 1\r\n",
        b"PROXY TCP4 1.2.3.4 1.2.3.4 1 2 3\r\n",
        b"PROXY TCP4 1.2.3.4  1.2.3.4 1 2\r\n",
        b"PROXY TCP4 ::1 1.2.3.4 1 2\r\n",
        b"PROXY TCP6 1.2.3.4 ::1 1 2\r\n",
        b"PROXY TCP4 1.2.3.4 1.2.3.4 65536 2\r\n",
        b"PROXY TCP4 1.2.3.4 1.2.3.4 01 2\r\n",
        b"PROXY TCP4 1.2.3.4 1.2.3.4 +1 2\r\n",
        b"PROXY TCP4 1.2.3.4 1.2.3.4 1 2\n",
        b"PROXY TCP4 1.2.3.4 1.2.3.4 1 2\rX",
        b"PROXY TCP4 1.2.3.4 1.2.3.4 1 2 \r\n",
        b"PROXY\r\n",
        b"PROXYTCP4",
        b"proxy TCP4 1.2.3.4 1.2.3.4 1 2\r\n",
        b"PROXY UNKNOWN\x01",
        b"PROXY UNKNOWN \x01\r\n",
        b"PROXY UNKNOWN \xff\r\n",
    ] {
        bad(line, mode);
    }
    // Too long: no CRLF within 107 bytes, or a CRLF past it.
    let mut long = b"PROXY UNKNOWN ".to_vec();
    long.resize(107, b'x');
    assert!(matches!(bad(&long, mode), ProxyError::Malformed(_)));
    long.truncate(106);
    long.extend_from_slice(b"\r\n");
    assert!(matches!(bad(&long, mode), ProxyError::Malformed(_)));
}

#[test]
fn v2_proxy_and_local_commands() {
    let mode = ProxyProtocol::V2;
    let mut h = v2(0x21, 0x11, &v4_addrs());
    h.extend_from_slice(b"GET /");
    let (head, len) = done(&h, mode);
    assert_eq!(head.source, addr("192.0.2.7:4711"));
    assert_eq!(head.version, Version::V2);
    assert_eq!((len, &h[len..]), (28, &b"GET /"[..]));

    let mut a6 = Vec::new();
    a6.extend_from_slice(&"2001:db8::7".parse::<Ipv6Addr>().unwrap().octets());
    a6.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
    a6.extend_from_slice(&443u16.to_be_bytes());
    a6.extend_from_slice(&8080u16.to_be_bytes());
    assert_eq!(
        done(&v2(0x21, 0x21, &a6), mode).0.source,
        addr("[2001:db8::7]:443")
    );
    // LOCAL (health checks): no address, whatever follows.
    assert_eq!(done(&v2(0x20, 0x00, &[]), mode).0.source, None);
    assert_eq!(done(&v2(0x20, 0x11, &v4_addrs()), mode).0.source, None);
    assert_eq!(done(&v2(0x20, 0x12, &[1, 2, 3]), mode).0.source, None);
    // PROXY with an unspecified or Unix family: no address.
    assert_eq!(done(&v2(0x21, 0x00, &[]), mode).0.source, None);
    assert_eq!(done(&v2(0x21, 0x31, &[0; 216]), mode).0.source, None);
}

#[test]
fn v2_tlvs_are_skipped_within_bounds() {
    let mode = ProxyProtocol::V2;
    let mut payload = v4_addrs();
    // PP2_TYPE_AUTHORITY "example.com", then a NOOP of 0 bytes, then AWS's.
    payload.extend_from_slice(&[0x02, 0, 11]);
    payload.extend_from_slice(b"example.com");
    payload.extend_from_slice(&[0x04, 0, 0]);
    payload.extend_from_slice(&[0xEA, 0, 4, 1, b'v', b'p', b'c']);
    assert_eq!(
        done(&v2(0x21, 0x11, &payload), mode).0.source,
        addr("192.0.2.7:4711")
    );
    // A TLV longer than the header, or cut short.
    let mut over = v4_addrs();
    over.extend_from_slice(&[0x02, 0, 20, b'x']);
    bad(&v2(0x21, 0x11, &over), mode);
    let mut short = v4_addrs();
    short.extend_from_slice(&[0x02, 0]);
    bad(&v2(0x21, 0x11, &short), mode);
    // The largest accepted payload, and one byte more.
    let mut big = v4_addrs();
    let fill = MAX_V2_PAYLOAD - big.len() - 3;
    big.extend_from_slice(&[0x04]);
    big.extend_from_slice(&(fill as u16).to_be_bytes());
    big.resize(MAX_V2_PAYLOAD, 0);
    assert!(done(&v2(0x21, 0x11, &big), mode).0.source.is_some());
    let mut header = v2(0x21, 0x11, &[]);
    header[14..16].copy_from_slice(&((MAX_V2_PAYLOAD + 1) as u16).to_be_bytes());
    assert!(matches!(bad(&header, mode), ProxyError::Malformed(_)));
}

#[test]
fn v2_bad_headers_are_refused() {
    let mode = ProxyProtocol::V2;
    bad(&v2(0x11, 0x11, &v4_addrs()), mode); // version 1
    bad(&v2(0x22, 0x11, &v4_addrs()), mode); // command 2
    bad(&v2(0x21, 0x12, &v4_addrs()), mode); // UDP
    bad(&v2(0x21, 0x41, &v4_addrs()), mode); // family 4
    bad(&v2(0x21, 0x11, &v4_addrs()[..11]), mode); // short addresses
    bad(&v2(0x21, 0x21, &v4_addrs()), mode); // IPv6 needs 36
    let mut sig = v2(0x21, 0x11, &v4_addrs());
    sig[5] = b'X';
    assert!(matches!(bad(&sig, mode), ProxyError::Missing));
    // A bad version byte is refused before the rest arrives.
    let h = v2(0x31, 0x11, &v4_addrs());
    bad(&h[..13], mode);
}

#[test]
fn v2_is_incomplete_until_its_length() {
    let h = v2(0x21, 0x11, &v4_addrs());
    for n in 0..h.len() {
        assert_eq!(
            parse(&h[..n], ProxyProtocol::Any).unwrap(),
            Parsed::Incomplete,
            "{n}"
        );
    }
}

#[test]
fn the_mode_picks_the_versions() {
    let one = b"PROXY UNKNOWN\r\n";
    let two = v2(0x20, 0x00, &[]);
    assert!(matches!(
        bad(one, ProxyProtocol::V2),
        ProxyError::WrongVersion(..)
    ));
    assert!(matches!(
        bad(&two, ProxyProtocol::V1),
        ProxyError::WrongVersion(..)
    ));
    assert!(matches!(
        bad(b"PROXY", ProxyProtocol::V2),
        ProxyError::WrongVersion(..)
    ));
    assert!(matches!(
        bad(b"\r\n\r\nX", ProxyProtocol::V1),
        ProxyError::Missing
    ));
    done(one, ProxyProtocol::Any);
    done(&two, ProxyProtocol::Any);
    assert!(matches!(bad(b"G", ProxyProtocol::Any), ProxyError::Missing));
    assert!(matches!(
        bad(b"\x16\x03\x01", ProxyProtocol::Any),
        ProxyError::Missing
    ));
}

#[tokio::test]
async fn read_header_hands_on_the_bytes_after_it() {
    let mut input: &[u8] = b"PROXY TCP4 192.0.2.7 10.0.0.1 4711 8080\r\nGET / HTTP/1.1\r\n\r\n";
    let (h, rest) = read_header(&mut input, ProxyProtocol::Any).await.unwrap();
    assert_eq!(h.source, addr("192.0.2.7:4711"));
    assert_eq!(&rest[..], b"GET / HTTP/1.1\r\n\r\n");
    let mut cut: &[u8] = b"PROXY TCP4 192.0.2.7";
    assert!(matches!(
        read_header(&mut cut, ProxyProtocol::Any).await,
        Err(ProxyError::Closed)
    ));
}
