//! The streams `drover logs` and `drover exec` open on the API server
//! (HTTP/1.1; TLS with the client config's credentials on `https://`),
//! which checks RBAC and proxies them to the pod's agent.

use anyhow::{Context, Result, bail};
use drover_proto::client::Credentials;
use drover_proto::dial::{Conn, Dialer, read_head};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};

/// `host:port` and the host alone (the TLS server name) of an API URL.
fn authority(server: &str) -> Result<(String, String)> {
    let rest = server
        .split_once("://")
        .map_or(server, |(_, rest)| rest)
        .split('/')
        .next()
        .unwrap_or_default();
    let Some((host, _)) = rest
        .rsplit_once(':')
        .filter(|(_, port)| port.parse::<u16>().is_ok())
    else {
        bail!("the server URL {server:?} has no port");
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Ok((rest.to_string(), host.to_string()))
}

/// The message of a Kubernetes `Status` body, else the body itself.
fn status_message(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| body.trim_end().to_string())
}

/// Sends `method path` with `body` and returns the connection once the
/// server answered 200, or 101 to a request to `upgrade` to a protocol.
/// Without an upgrade the request is HTTP/1.0, so the response body simply
/// ends with the connection (no chunked framing to undo).
pub async fn open(
    server: &str,
    method: &str,
    path: &str,
    upgrade: Option<&str>,
    body: &[u8],
) -> Result<BufReader<Conn>> {
    let none = Credentials::default();
    let credentials = super::CREDENTIALS.get().unwrap_or(&none);
    let dialer = match server.starts_with("https://") {
        true => Dialer::tls(credentials)?,
        false => Dialer::plain(),
    };
    let (addr, host) = authority(server)?;
    let mut conn = dialer
        .connect(&addr, &host)
        .await
        .with_context(|| format!("connecting to the API server {server}"))?;
    let auth = match &credentials.token {
        Some(t) => format!("Authorization: Bearer {t}\r\n"),
        None => String::new(),
    };
    let (version, headers) = match upgrade {
        Some(protocol) => (
            "HTTP/1.1",
            format!(
                "Content-Type: application/json\r\nConnection: Upgrade\r\nUpgrade: {protocol}\r\n"
            ),
        ),
        None => ("HTTP/1.0", String::new()),
    };
    let head = format!(
        "{method} {path} {version}\r\nHost: {addr}\r\n{auth}{headers}Content-Length: {}\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).await?;
    conn.write_all(body).await?;
    let mut reader = BufReader::new(conn);
    let head = read_head(&mut reader)
        .await
        .with_context(|| format!("reading the answer of {server}"))?;
    if matches!(head.status, 200 | 101) {
        return Ok(reader);
    }
    // The connection may stay open after an error: read its length only.
    let mut text = String::new();
    let length = head.content_length.unwrap_or(0).min(64 << 10);
    let _ = (&mut reader).take(length).read_to_string(&mut text).await;
    match status_message(&text).as_str() {
        "" => bail!("the server answered {}", head.status_line),
        message => bail!("{message}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorities_and_messages() {
        let (addr, host) = authority("https://127.0.0.1:7700").unwrap();
        assert_eq!(
            (addr.as_str(), host.as_str()),
            ("127.0.0.1:7700", "127.0.0.1")
        );
        let (addr, host) = authority("https://[::1]:7700/").unwrap();
        assert_eq!((addr.as_str(), host.as_str()), ("[::1]:7700", "::1"));
        assert!(authority("https://cp.example").is_err());
        assert_eq!(
            status_message(r#"{"kind":"Status","message":"forbidden: no"}"#),
            "forbidden: no"
        );
        assert_eq!(status_message("plain\n"), "plain");
    }
}
