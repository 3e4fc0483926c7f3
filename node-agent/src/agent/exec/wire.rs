//! The `drover exec` wire format between the CLI and the agent (pure).
//!
//! The CLI sends `POST /exec/{namespace}/{pod}` with a JSON
//! [`ExecRequest`] body; on `200` both sides then speak frames on the same
//! connection: one byte of [`Channel`], a big-endian u32 length, the
//! payload. The agent ends with one `Exit` frame (i32 exit code).

use serde::{Deserialize, Serialize};

/// What to run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecRequest {
    /// The container (the pod's first when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// The command and its arguments.
    pub command: Vec<String>,
    /// Forward the client's stdin.
    #[serde(default)]
    pub stdin: bool,
    /// Run under a terminal (stdout and stderr merged).
    #[serde(default)]
    pub tty: bool,
}

/// A frame's stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Channel {
    /// Client → agent: input.
    Stdin = 0,
    /// Agent → client: output.
    Stdout = 1,
    /// Agent → client: errors.
    Stderr = 2,
    /// Agent → client: the exit code, last.
    Exit = 3,
    /// Client → agent: terminal size (u16 cols, u16 rows).
    Resize = 4,
    /// Client → agent: end of input.
    StdinClose = 5,
}

impl Channel {
    /// From its byte.
    pub fn from_byte(b: u8) -> Option<Channel> {
        Some(match b {
            0 => Channel::Stdin,
            1 => Channel::Stdout,
            2 => Channel::Stderr,
            3 => Channel::Exit,
            4 => Channel::Resize,
            5 => Channel::StdinClose,
            _ => return None,
        })
    }
}

/// The largest payload a frame may carry.
pub const MAX_FRAME: usize = 1 << 20;

/// A frame's header and payload.
pub fn encode(channel: Channel, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    let mut out = Vec::with_capacity(5 + payload.len());
    out.push(channel as u8);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&payload[..len as usize]);
    out
}

/// A frame header: its channel and payload length.
pub fn decode_header(h: [u8; 5]) -> Result<(Channel, usize), String> {
    let channel = Channel::from_byte(h[0]).ok_or_else(|| format!("unknown channel {}", h[0]))?;
    let len = u32::from_be_bytes([h[1], h[2], h[3], h[4]]) as usize;
    if len > MAX_FRAME {
        return Err(format!("frame of {len} bytes is too large"));
    }
    Ok((channel, len))
}

/// The exit frame's payload.
pub fn exit_payload(code: i32) -> [u8; 4] {
    code.to_be_bytes()
}

/// An exit code from its payload.
pub fn parse_exit(p: &[u8]) -> Option<i32> {
    Some(i32::from_be_bytes(p.try_into().ok()?))
}

/// A resize frame's payload.
pub fn resize_payload(cols: u16, rows: u16) -> [u8; 4] {
    let [a, b] = cols.to_be_bytes();
    let [c, d] = rows.to_be_bytes();
    [a, b, c, d]
}

/// Columns and rows from a resize payload.
pub fn parse_resize(p: &[u8]) -> Option<(u16, u16)> {
    let p: [u8; 4] = p.try_into().ok()?;
    Some((
        u16::from_be_bytes([p[0], p[1]]),
        u16::from_be_bytes([p[2], p[3]]),
    ))
}

/// `/exec/{namespace}/{pod}` → (namespace, pod).
pub fn parse_target(target: &str) -> Option<(String, String)> {
    let path = target.split('?').next()?;
    let mut parts = path.strip_prefix("/exec/")?.split('/');
    let ns = parts.next().filter(|s| !s.is_empty())?;
    let pod = parts.next().filter(|s| !s.is_empty())?;
    parts
        .next()
        .is_none()
        .then(|| (ns.to_string(), pod.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let f = encode(Channel::Stdout, b"hello");
        let (ch, len) = decode_header(f[..5].try_into().expect("5")).expect("header");
        assert_eq!((ch, len, &f[5..]), (Channel::Stdout, 5, &b"hello"[..]));
        assert_eq!(parse_exit(&exit_payload(-3)), Some(-3));
        assert_eq!(parse_resize(&resize_payload(80, 24)), Some((80, 24)));
        assert!(decode_header([9, 0, 0, 0, 0]).is_err());
        assert!(decode_header([1, 0xff, 0xff, 0xff, 0xff]).is_err());
        assert_eq!(parse_exit(b"12"), None);
    }

    #[test]
    fn targets() {
        assert_eq!(
            parse_target("/exec/default/web"),
            Some(("default".into(), "web".into()))
        );
        for bad in ["/exec/", "/exec/ns", "/exec/ns/p/x", "/logs/ns/p"] {
            assert_eq!(parse_target(bad), None, "{bad}");
        }
    }
}
