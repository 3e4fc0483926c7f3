//! A tiny blocking HTTPS/1.1 client for the API's JSON gateway: enough for
//! steady write streams and checks, with hard timeouts, and no dependency
//! on the code under test (rustls for TLS, as the lab's admin).

use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use rustls::pki_types::ServerName;

use crate::pki::Api;

/// An HTTP answer: status code and body.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: String,
}

impl Response {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// A connection, with TLS or without.
trait Stream: std::io::Read + Write {}
impl<T: std::io::Read + Write> Stream for T {}

/// Sends one request to `api` and reads the whole answer. Any transport
/// failure (refused, reset, timeout, handshake) is an `Err` string.
pub fn request(
    api: &Api,
    method: &str,
    path: &str,
    body: Option<&str>,
    timeout: Duration,
) -> Result<Response, String> {
    let addr = &api.addr;
    let sock: SocketAddr = addr.parse().map_err(|e| format!("address {addr}: {e}"))?;
    let tcp =
        TcpStream::connect_timeout(&sock, timeout).map_err(|e| format!("connect {addr}: {e}"))?;
    let _ = tcp.set_read_timeout(Some(timeout));
    let _ = tcp.set_write_timeout(Some(timeout));
    let _ = tcp.set_nodelay(true);
    let mut stream: Box<dyn Stream> = match api.tls() {
        Some(config) => {
            let name = ServerName::IpAddress(api.ip()?.into());
            let tls = rustls::ClientConnection::new(config, name)
                .map_err(|e| format!("TLS to {addr}: {e}"))?;
            Box::new(rustls::StreamOwned::new(tls, tcp))
        }
        None => Box::new(tcp),
    };
    let body = body.unwrap_or("");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream
        .write_all(head.as_bytes())
        .and_then(|_| stream.write_all(body.as_bytes()))
        .and_then(|_| stream.flush())
        .map_err(|e| format!("send to {addr}: {e}"))?;
    read_response(BufReader::new(stream)).map_err(|e| format!("answer from {addr}: {e}"))
}

fn read_response(mut r: impl BufRead) -> std::io::Result<Response> {
    let mut line = String::new();
    r.read_line(&mut line)?;
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
    let mut length = None;
    let mut chunked = false;
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse::<usize>().ok();
        } else if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
            chunked = true;
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            line.clear();
            r.read_line(&mut line)?;
            let size = usize::from_str_radix(line.trim(), 16)
                .map_err(|_| std::io::Error::other("bad chunk size"))?;
            if size == 0 {
                break;
            }
            let mut chunk = vec![0; size + 2];
            r.read_exact(&mut chunk)?;
            chunk.truncate(size);
            body.extend_from_slice(&chunk);
        }
    } else if let Some(n) = length {
        body.resize(n, 0);
        r.read_exact(&mut body)?;
    } else {
        // A server that closes without TLS close_notify still sent it all.
        r.read_to_end(&mut body).or_else(|e| match e.kind() {
            ErrorKind::UnexpectedEof => Ok(0),
            _ => Err(e),
        })?;
    }
    Ok(Response {
        status,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_length_and_chunked_bodies() {
        let plain = "HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\n{}";
        let r = read_response(plain.as_bytes()).unwrap();
        assert_eq!((r.status, r.body.as_str()), (201, "{}"));
        let chunked =
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        let r = read_response(chunked.as_bytes()).unwrap();
        assert_eq!((r.status, r.body.as_str()), (200, "abcde"));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(read_response("nonsense".as_bytes()).is_err());
        let bad_chunk = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n";
        assert!(read_response(bad_chunk.as_bytes()).is_err());
    }
}
