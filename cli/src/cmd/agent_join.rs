//! `drover agent --join-token T --ca-cert-hash sha256:HEX`: the agent's
//! first start on a new machine. It fetches the CA without trusting it,
//! pins it by hash (kubeadm's discovery), sends a CSR for a key it keeps,
//! and writes the signed node certificate into `DATA_DIR/pki`; later starts
//! use those files and need no token.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use drover_control_plane::auth::join::{CA_PATH, JOIN_PATH, JoinReply, JoinRequest};
use drover_proto::client::Credentials;
use drover_proto::dial::{Dialer, read_head};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};

use crate::pki::ca_hash::{ca_cert_hash, parse_pin};

/// Where a joined agent keeps its credentials.
fn pki_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("pki")
}

/// The credentials a joined agent saved, if it has joined before.
pub fn saved_credentials(data_dir: &Path) -> Result<Option<Credentials>> {
    let dir = pki_dir(data_dir);
    let [ca, cert, key] = ["ca.crt", "node.crt", "node.key"].map(|f| dir.join(f));
    if !cert.exists() {
        return Ok(None);
    }
    let read = |p: &Path| std::fs::read(p).with_context(|| format!("cannot read {}", p.display()));
    Ok(Some(Credentials {
        ca_pem: Some(read(&ca)?),
        cert_pem: Some((read(&cert)?, read(&key)?)),
        token: None,
    }))
}

/// Joins the cluster at `server` as `node` with `token`, trusting its CA
/// only if it matches `pin`; saves and returns the node's credentials.
pub async fn join(
    server: &str,
    token: &str,
    pin: &str,
    node: &str,
    data_dir: &Path,
) -> Result<Credentials> {
    let pin = parse_pin(pin).map_err(anyhow::Error::msg)?;
    let authority = server
        .strip_prefix("https://")
        .map(|a| a.trim_end_matches('/'))
        .ok_or_else(|| {
            anyhow::anyhow!("--join-token needs an https:// --server, not {server:?}")
        })?;
    let host = authority
        .rsplit_once(':')
        .map_or(authority, |(h, _)| h)
        .trim_matches(['[', ']']);

    let unverified = Dialer::unverified_tls().context("TLS settings")?;
    let (status, ca_pem) = request(&unverified, authority, host, "GET", CA_PATH, None).await?;
    if status != 200 {
        bail!("{server}{CA_PATH} answered {status}: is this a drover server with TLS?");
    }
    let found = ca_cert_hash(&ca_pem).map_err(|e| anyhow::anyhow!("the server's CA: {e}"))?;
    if found != pin {
        bail!(
            "the CA of {server} has hash {found}, not the --ca-cert-hash {pin}: refusing to trust it (another server, or someone in between)"
        );
    }

    let (csr, key) = crate::pki::new_csr()?;
    let body = serde_json::to_vec(&JoinRequest {
        token: token.to_string(),
        node_name: node.to_string(),
        csr,
    })?;
    let pinned = Credentials {
        ca_pem: Some(ca_pem.clone()),
        ..Credentials::default()
    };
    let dialer = Dialer::tls(&pinned)?;
    let (status, reply) = request(&dialer, authority, host, "POST", JOIN_PATH, Some(&body)).await?;
    if status != 200 {
        let message = serde_json::from_slice::<serde_json::Value>(&reply)
            .ok()
            .and_then(|v| v["message"].as_str().map(str::to_string))
            .unwrap_or_else(|| String::from_utf8_lossy(&reply).into_owned());
        bail!("{server} refused the join ({status}): {message}");
    }
    let reply: JoinReply = serde_json::from_slice(&reply).context("the join reply")?;
    save(data_dir, &ca_pem, &reply.certificate, &key)?;
    Ok(Credentials {
        ca_pem: Some(ca_pem),
        cert_pem: Some((reply.certificate.into_bytes(), key.into_bytes())),
        token: None,
    })
}

fn save(data_dir: &Path, ca: &[u8], cert: &str, key: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = pki_dir(data_dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for (name, bytes, mode) in [
        ("ca.crt", ca, 0o644),
        ("node.key", key.as_bytes(), 0o600),
        // Last: its presence means the join finished.
        ("node.crt", cert.as_bytes(), 0o644),
    ] {
        let path = dir.join(name);
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&path)
            .and_then(|mut f| f.write_all(bytes))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// One HTTP/1.1 request; the status and the body.
async fn request(
    dialer: &Dialer,
    authority: &str,
    host: &str,
    method: &str,
    path: &str,
    body: Option<&[u8]>,
) -> Result<(u16, Vec<u8>)> {
    let mut conn = dialer.connect(authority, host).await?;
    let body = body.unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).await?;
    conn.write_all(body).await?;
    conn.flush().await?;
    let mut reader = BufReader::new(conn);
    let head = read_head(&mut reader).await?;
    let mut reply = Vec::new();
    match head.content_length {
        Some(n) => {
            reply.resize(usize::try_from(n).unwrap_or(0).min(1 << 20), 0);
            reader.read_exact(&mut reply).await?;
        }
        None => {
            reader.take(1 << 20).read_to_end(&mut reply).await?;
        }
    }
    Ok((head.status, reply))
}
