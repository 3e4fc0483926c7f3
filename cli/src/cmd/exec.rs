//! `drover exec POD [-c C] [-i] [-t] -- CMD…`: runs a command in a running
//! container through the API server (`POST .../pods/POD/exec`, upgraded
//! to the agent's exec frames), relaying input, output and terminal size;
//! exits with the command's exit code.

use std::os::fd::AsFd;

use anyhow::{Context, Result, bail};
use clap::Args;
use drover_control_plane::node_proxy::exec::UPGRADE;
use drover_node_agent::agent::exec::wire::{self, Channel, ExecRequest};
use nix::sys::termios::{self, SetArg, Termios};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

#[derive(Args)]
pub struct ExecArgs {
    /// The pod.
    pod: String,
    /// The container (default: the pod's first).
    #[arg(short = 'c', long)]
    container: Option<String>,
    /// Pass stdin to the command.
    #[arg(short = 'i', long)]
    stdin: bool,
    /// Run the command on a terminal.
    #[arg(short = 't', long)]
    tty: bool,
    /// The pod's namespace.
    #[arg(short = 'n', long, default_value = "default")]
    namespace: String,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

/// Puts the local terminal in raw mode while alive.
struct RawMode(Option<Termios>);

impl RawMode {
    fn enter() -> RawMode {
        let stdin = std::io::stdin();
        let Ok(saved) = termios::tcgetattr(stdin.as_fd()) else {
            return RawMode(None);
        };
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        if termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw).is_err() {
            return RawMode(None);
        }
        RawMode(Some(saved))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(saved) = &self.0 {
            let _ = termios::tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, saved);
        }
    }
}

fn window_size() -> Option<(u16, u16)> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes a winsize we own.
    let rc = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut ws) };
    (rc == 0 && ws.ws_col > 0).then_some((ws.ws_col, ws.ws_row))
}

/// Runs the command; returns its exit code.
pub async fn run(server: &str, args: ExecArgs) -> Result<i32> {
    let req = ExecRequest {
        container: args.container.clone(),
        command: args.command.clone(),
        stdin: args.stdin,
        tty: args.tty,
    };
    let body = serde_json::to_vec(&req)?;
    let path = format!(
        "/api/v1/namespaces/{}/pods/{}/exec",
        args.namespace, args.pod
    );
    let conn = super::api_stream::open(server, "POST", &path, Some(UPGRADE), &body).await?;
    let (mut reader, mut wr) = tokio::io::split(conn);

    // Everything the client sends goes through one writer task.
    let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
    tokio::spawn(async move {
        while let Some(frame) = rx.recv().await {
            if wr.write_all(&frame).await.is_err() {
                break;
            }
        }
    });
    let _raw = (args.tty && args.stdin).then(RawMode::enter);
    if args.tty {
        if let Some((cols, rows)) = window_size() {
            let _ = tx.send(wire::encode(
                Channel::Resize,
                &wire::resize_payload(cols, rows),
            ));
        }
        if let Ok(mut winch) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())
        {
            let tx = tx.clone();
            tokio::spawn(async move {
                while winch.recv().await.is_some() {
                    if let Some((cols, rows)) = window_size() {
                        let frame =
                            wire::encode(Channel::Resize, &wire::resize_payload(cols, rows));
                        if tx.send(frame).is_err() {
                            break;
                        }
                    }
                }
            });
        }
    }
    if args.stdin {
        let tx = tx.clone();
        tokio::spawn(async move {
            let mut stdin = tokio::io::stdin();
            let mut buf = vec![0u8; 16 << 10];
            loop {
                match stdin.read(&mut buf).await {
                    Ok(0) | Err(_) => {
                        let _ = tx.send(wire::encode(Channel::StdinClose, &[]));
                        break;
                    }
                    Ok(n) => {
                        if tx.send(wire::encode(Channel::Stdin, &buf[..n])).is_err() {
                            break;
                        }
                    }
                }
            }
        });
    }
    // Held until the end: closing our side would tell the agent we left,
    // and it would stop the command.
    let _connected = tx;

    let mut stdout = tokio::io::stdout();
    let mut stderr = tokio::io::stderr();
    loop {
        let mut h = [0u8; 5];
        if reader.read_exact(&mut h).await.is_err() {
            bail!("the connection closed before the command ended");
        }
        let (channel, len) = wire::decode_header(h).map_err(anyhow::Error::msg)?;
        let mut payload = vec![0u8; len];
        reader.read_exact(&mut payload).await?;
        match channel {
            Channel::Stdout => {
                stdout.write_all(&payload).await?;
                stdout.flush().await?;
            }
            Channel::Stderr => {
                stderr.write_all(&payload).await?;
                stderr.flush().await?;
            }
            Channel::Exit => {
                return wire::parse_exit(&payload).context("malformed exit frame from the agent");
            }
            _ => {}
        }
    }
}
