//! The few DNS messages the node's server speaks (RFC 1035), pure: a query
//! with one question in, a response with A records (or an error code) out.

use std::net::Ipv4Addr;

/// Record type A.
pub const TYPE_A: u16 = 1;
/// Class IN.
pub const CLASS_IN: u16 = 1;

/// Response codes used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rcode {
    NoError = 0,
    FormErr = 1,
    ServFail = 2,
    NxDomain = 3,
    NotImp = 4,
    Refused = 5,
}

/// A parsed query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub id: u16,
    /// Recursion desired (copied into the answer).
    pub rd: bool,
    /// Lower case, without the final dot.
    pub name: String,
    pub qtype: u16,
    pub qclass: u16,
    /// The question section as received, echoed in the answer.
    question: Vec<u8>,
}

/// Why a message is not a query this server answers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("DNS message shorter than its header")]
    Short,
    #[error("not a standard query")]
    NotAQuery,
    #[error("expected exactly one question, got {0}")]
    Questions(u16),
    #[error("malformed question name")]
    BadName,
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// Parses a query (QR=0, opcode 0, one question, no compression in it).
pub fn parse_query(msg: &[u8]) -> Result<Query, ParseError> {
    if msg.len() < 12 {
        return Err(ParseError::Short);
    }
    let id = u16_at(msg, 0).ok_or(ParseError::Short)?;
    let flags = u16_at(msg, 2).ok_or(ParseError::Short)?;
    if flags & 0x8000 != 0 || (flags >> 11) & 0xf != 0 {
        return Err(ParseError::NotAQuery);
    }
    let qdcount = u16_at(msg, 4).ok_or(ParseError::Short)?;
    if qdcount != 1 {
        return Err(ParseError::Questions(qdcount));
    }
    let mut at = 12;
    let mut labels: Vec<String> = Vec::new();
    loop {
        let len = usize::from(*msg.get(at).ok_or(ParseError::BadName)?);
        at += 1;
        if len == 0 {
            break;
        }
        // Pointers (0xC0) and the reserved kinds have no place here.
        if len > 63 {
            return Err(ParseError::BadName);
        }
        let label = msg.get(at..at + len).ok_or(ParseError::BadName)?;
        labels.push(String::from_utf8_lossy(label).to_ascii_lowercase());
        at += len;
    }
    let qtype = u16_at(msg, at).ok_or(ParseError::BadName)?;
    let qclass = u16_at(msg, at + 2).ok_or(ParseError::BadName)?;
    let end = at + 4;
    Ok(Query {
        id,
        rd: flags & 0x0100 != 0,
        name: labels.join("."),
        qtype,
        qclass,
        question: msg[12..end].to_vec(),
    })
}

/// The response to `q`: `rcode`, and one A record per address (TTL `ttl`).
pub fn response(q: &Query, rcode: Rcode, addresses: &[Ipv4Addr], ttl: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(12 + q.question.len() + 16 * addresses.len());
    out.extend_from_slice(&q.id.to_be_bytes());
    // QR, AA, RD as asked, RA (names outside the cluster are forwarded).
    let flags: u16 = 0x8000 | 0x0400 | if q.rd { 0x0100 } else { 0 } | 0x0080 | rcode as u16;
    out.extend_from_slice(&flags.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes());
    let count = u16::try_from(addresses.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&count.to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(&q.question);
    for ip in addresses.iter().take(usize::from(count)) {
        // The name: a pointer to the question's, at offset 12.
        out.extend_from_slice(&[0xc0, 0x0c]);
        out.extend_from_slice(&TYPE_A.to_be_bytes());
        out.extend_from_slice(&CLASS_IN.to_be_bytes());
        out.extend_from_slice(&ttl.to_be_bytes());
        out.extend_from_slice(&4u16.to_be_bytes());
        out.extend_from_slice(&ip.octets());
    }
    out
}

/// A minimal error response to a message that could not be parsed as a
/// query (FORMERR with its id), or None when even the id is missing.
pub fn format_error(msg: &[u8]) -> Option<Vec<u8>> {
    let id = msg.get(0..2)?;
    let mut out = id.to_vec();
    out.extend_from_slice(&(0x8000u16 | Rcode::FormErr as u16).to_be_bytes());
    out.extend_from_slice(&[0; 8]);
    Some(out)
}

/// A query for `name` (for tests and the forwarder's own checks).
pub fn query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&0x0100u16.to_be_bytes());
    out.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.').filter(|l| !l.is_empty()) {
        let bytes = &label.as_bytes()[..label.len().min(63)];
        out.push(bytes.len() as u8);
        out.extend_from_slice(bytes);
    }
    out.push(0);
    out.extend_from_slice(&qtype.to_be_bytes());
    out.extend_from_slice(&CLASS_IN.to_be_bytes());
    out
}

/// The rcode and A addresses of a response (pure; for tests).
pub fn answers(msg: &[u8]) -> Option<(u8, Vec<Ipv4Addr>)> {
    let rcode = (u16_at(msg, 2)? & 0xf) as u8;
    let ancount = u16_at(msg, 6)?;
    let mut at = 12;
    // Skip the question.
    loop {
        let len = usize::from(*msg.get(at)?);
        at += 1;
        if len == 0 {
            break;
        }
        at += len;
    }
    at += 4;
    let mut ips = Vec::new();
    for _ in 0..ancount {
        at += 2; // name pointer
        let rtype = u16_at(msg, at)?;
        let rdlen = usize::from(u16_at(msg, at + 8)?);
        at += 10;
        let data = msg.get(at..at + rdlen)?;
        if rtype == TYPE_A && rdlen == 4 {
            ips.push(Ipv4Addr::new(data[0], data[1], data[2], data[3]));
        }
        at += rdlen;
    }
    Some((rcode, ips))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_round_trips_into_an_answer() {
        let q = parse_query(&query(0xbeef, "Web.Default.svc.cluster.local.", TYPE_A)).unwrap();
        assert_eq!(q.id, 0xbeef);
        assert!(q.rd);
        assert_eq!(q.name, "web.default.svc.cluster.local");
        assert_eq!((q.qtype, q.qclass), (TYPE_A, CLASS_IN));
        let ip = Ipv4Addr::new(10, 96, 0, 2);
        let r = response(&q, Rcode::NoError, &[ip], 5);
        assert_eq!(&r[0..2], &[0xbe, 0xef]);
        assert_eq!(answers(&r), Some((0, vec![ip])));
        let nx = response(&q, Rcode::NxDomain, &[], 5);
        assert_eq!(answers(&nx), Some((3, vec![])));
    }

    #[test]
    fn refuses_what_is_not_a_simple_query() {
        assert_eq!(parse_query(&[0; 5]), Err(ParseError::Short));
        let mut answer = query(1, "a.b", TYPE_A);
        answer[2] |= 0x80;
        assert_eq!(parse_query(&answer), Err(ParseError::NotAQuery));
        let mut two = query(1, "a.b", TYPE_A);
        two[5] = 2;
        assert_eq!(parse_query(&two), Err(ParseError::Questions(2)));
        let mut pointer = query(1, "a.b", TYPE_A);
        pointer[12] = 0xc0;
        assert_eq!(parse_query(&pointer), Err(ParseError::BadName));
        let truncated = &query(1, "abc.def", TYPE_A)[..16];
        assert_eq!(parse_query(truncated), Err(ParseError::BadName));
        assert_eq!(
            format_error(&[7, 9, 1]).map(|r| r[..2].to_vec()),
            Some(vec![7, 9])
        );
        assert_eq!(format_error(&[7]), None);
    }
}
