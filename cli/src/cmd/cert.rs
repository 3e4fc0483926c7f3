//! `drover cert init|issue|revoke|ca-hash`: the cluster CA and the certificates
//! it signs, as files in one folder (`ca.crt`/`ca.key`, then `NAME.crt`/`NAME.key`,
//! and `ca.crl` listing the revoked ones).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use time::OffsetDateTime;

use crate::pki::{self, CertKind, CertRequest, Pem};

#[derive(Args)]
pub struct CertArgs {
    #[command(subcommand)]
    command: CertCommand,
}

#[derive(Subcommand)]
enum CertCommand {
    /// Create the cluster CA (`ca.crt`, `ca.key`) in a folder.
    Init(InitArgs),
    /// Issue a certificate signed by the CA: `NAME.crt` and `NAME.key`.
    Issue(IssueArgs),
    /// Revoke a certificate: add it to the CA's revocation list `ca.crl`,
    /// which `drover server --crl-file` enforces. With neither a file nor
    /// --serial, (re)writes the list as it is (an empty one to start with).
    Revoke(RevokeArgs),
    /// Print the CA's `sha256:HEX` pin, for `drover agent --ca-cert-hash`.
    CaHash(CaHashArgs),
}

#[derive(Args)]
struct RevokeArgs {
    /// Folder holding the CA (`ca.crt`, `ca.key`); the list is `ca.crl` there.
    #[arg(long)]
    dir: PathBuf,
    /// The certificate to revoke (PEM), e.g. `alice.crt`.
    #[arg(value_name = "CERT_FILE", conflicts_with = "serial")]
    cert: Option<PathBuf>,
    /// The serial number to revoke, in hex (`openssl x509 -noout -serial`),
    /// when the certificate file is gone.
    #[arg(long)]
    serial: Option<String>,
}

#[derive(Args)]
struct CaHashArgs {
    /// Folder holding the CA (`ca.crt`).
    #[arg(long)]
    dir: PathBuf,
}

#[derive(Args)]
struct InitArgs {
    /// Folder for the CA (created; an existing CA is never overwritten).
    #[arg(long)]
    dir: PathBuf,
    /// Days the CA is valid.
    #[arg(long, default_value_t = 3650, value_parser = clap::value_parser!(u32).range(1..))]
    days: u32,
}

#[derive(Args)]
struct IssueArgs {
    /// Folder holding the CA (`ca.crt`, `ca.key`).
    #[arg(long)]
    dir: PathBuf,
    /// What the certificate is for.
    #[arg(long, value_enum)]
    kind: CertKind,
    /// User name, node name, member id (peer) or server name.
    #[arg(long)]
    name: String,
    /// DNS names and IPs the server or peer is reached at (loopback is always included).
    #[arg(long, value_delimiter = ',')]
    hosts: Vec<String>,
    /// The group of a user (the certificate's O), e.g. `system:masters`;
    /// one per certificate.
    #[arg(long, value_delimiter = ',')]
    groups: Vec<String>,
    /// Days the certificate is valid.
    #[arg(long, default_value_t = 365, value_parser = clap::value_parser!(u32).range(1..))]
    days: u32,
    /// Start the validity this many days in the past (tests make expired
    /// certificates with it; clocks that lag a little need a day).
    #[arg(long, default_value_t = 0, hide = true)]
    backdate_days: u32,
    /// Folder for the certificate (default: --dir).
    #[arg(long)]
    out: Option<PathBuf>,
}

const DAY: Duration = Duration::from_secs(86_400);

pub fn run(args: CertArgs) -> Result<()> {
    match args.command {
        CertCommand::Init(a) => {
            init_ca(&a.dir, a.days)?;
            println!("CA written to {}", a.dir.join("ca.crt").display());
            Ok(())
        }
        CertCommand::Issue(a) => {
            let request = CertRequest {
                kind: a.kind,
                name: a.name,
                hosts: a.hosts,
                groups: a.groups,
                not_before: OffsetDateTime::now_utc() - DAY * a.backdate_days,
                validity: DAY * a.days,
            };
            let out = a.out.as_deref().unwrap_or(&a.dir);
            let (cert, _) = issue_into(&a.dir, &request, out)?;
            println!("certificate written to {}", cert.display());
            Ok(())
        }
        CertCommand::Revoke(a) => revoke(&a),
        CertCommand::CaHash(a) => {
            let path = a.dir.join("ca.crt");
            let pem =
                std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
            let pin = pki::ca_hash::ca_cert_hash(&pem)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            println!("{pin}");
            Ok(())
        }
    }
}

/// `drover cert revoke`: adds the certificate to `DIR/ca.crl`, replaced
/// in one rename so a server polling it never reads half a list.
fn revoke(args: &RevokeArgs) -> Result<()> {
    let ca = read_ca(&args.dir)?;
    let serial = match (&args.cert, &args.serial) {
        (Some(path), _) => {
            let pem = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            Some(
                pki::crl::serial_of(&ca, &pem)
                    .with_context(|| format!("cannot revoke {}", path.display()))?,
            )
        }
        (None, Some(text)) => Some(pki::crl::parse_serial(text)?),
        (None, None) => None,
    };
    let path = args.dir.join("ca.crl");
    let existing = match std::fs::read_to_string(&path) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let (pem, listed) = pki::crl::revoke(
        &ca,
        existing.as_deref(),
        serial.as_slice(),
        OffsetDateTime::now_utc(),
    )
    .with_context(|| format!("cannot update {}", path.display()))?;
    let temp = args.dir.join(".ca.crl.tmp");
    std::fs::write(&temp, pem).with_context(|| format!("cannot write {}", temp.display()))?;
    std::fs::rename(&temp, &path).with_context(|| format!("cannot write {}", path.display()))?;
    if let Some(serial) = serial {
        println!("revoked serial {}", pki::crl::display_serial(&serial));
    }
    println!(
        "{} lists {listed} revoked certificate(s); servers started with --crl-file {} refuse them",
        path.display(),
        path.display()
    );
    Ok(())
}

fn read_ca(ca_dir: &Path) -> Result<Pem> {
    let read = |name: &str| {
        let path = ca_dir.join(name);
        std::fs::read_to_string(&path).with_context(|| {
            format!(
                "cannot read {} (run `drover cert init --dir {}` first)",
                path.display(),
                ca_dir.display()
            )
        })
    };
    Ok(Pem {
        cert: read("ca.crt")?,
        key: read("ca.key")?,
    })
}

/// Creates the CA in `dir` unless one is there.
pub fn init_ca(dir: &Path, days: u32) -> Result<()> {
    if dir.join("ca.crt").exists() || dir.join("ca.key").exists() {
        bail!(
            "{} already holds a CA (ca.crt/ca.key); remove it first to make a new one",
            dir.display()
        );
    }
    let ca = pki::new_ca(OffsetDateTime::now_utc(), DAY * days)?;
    write_pair(dir, "ca", &ca)?;
    Ok(())
}

/// Issues `request` with the CA in `ca_dir`; writes the pair into `out`.
/// Returns the paths of the certificate and the key.
pub fn issue_into(ca_dir: &Path, request: &CertRequest, out: &Path) -> Result<(PathBuf, PathBuf)> {
    let ca = read_ca(ca_dir)?;
    let (user, _) = pki::subject(request)?;
    let pem = pki::issue(&ca, request)?;
    write_pair(out, &pki::file_stem(&user), &pem)
}

/// Writes `STEM.crt` and `STEM.key` (the key readable by the owner only).
fn write_pair(dir: &Path, stem: &str, pem: &Pem) -> Result<(PathBuf, PathBuf)> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let cert = dir.join(format!("{stem}.crt"));
    let key = dir.join(format!("{stem}.key"));
    std::fs::write(&cert, &pem.cert).with_context(|| format!("cannot write {}", cert.display()))?;
    let _ = std::fs::remove_file(&key);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&key)
        .with_context(|| format!("cannot write {}", key.display()))?;
    file.write_all(pem.key.as_bytes())
        .with_context(|| format!("cannot write {}", key.display()))?;
    Ok((cert, key))
}
