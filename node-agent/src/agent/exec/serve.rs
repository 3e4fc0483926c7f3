//! The agent's end of `drover exec` (`POST /exec/{namespace}/{pod}` on
//! the agent's HTTP endpoint): finds the container's running attempt,
//! starts the exec helper for it, and relays stdin, stdout, stderr,
//! terminal resizes and the exit code as frames ([`super::wire`]). With a
//! terminal the helper runs on a pty whose master the agent holds.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use drover_proto::dial::Conn;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::mpsc;

use super::ExecTarget;
use super::wire::{self, Channel, ExecRequest};
use crate::agent::informer::{self, PodCache};
use crate::agent::layout::{self, Layout};
use crate::shim::{ShimHandle, Status};

/// What the exec endpoint needs.
#[derive(Clone, Debug)]
pub struct ExecContext {
    /// Pods on this node.
    pub cache: PodCache,
    /// Where their containers are.
    pub layout: Layout,
    /// The helper binary (`drover`).
    pub exe: PathBuf,
    /// The arguments selecting the shim (`["shim"]`).
    pub shim_args: Vec<OsString>,
    /// The service proxy's nftables table, whose counters `/metrics` shows.
    pub service_table: Option<String>,
    /// The last metrics sample (`/metrics/summary`, and `/metrics`).
    pub metrics: crate::metrics::Latest,
    /// The guest kernel, if this node runs VM pods (`/snapshot`).
    pub vm_kernel: Option<PathBuf>,
}

/// Why an exec could not begin (the HTTP status and message).
#[derive(Debug, thiserror::Error)]
pub enum ExecRefused {
    /// The request is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// No such pod or container here.
    #[error("{0}")]
    NotFound(String),
}

impl ExecRefused {
    fn status(&self) -> &'static str {
        match self {
            ExecRefused::BadRequest(_) => "400 Bad Request",
            ExecRefused::NotFound(_) => "404 Not Found",
        }
    }
}

/// The highest attempt number under `dir`.
fn last_attempt(dir: &std::path::Path) -> Option<i32> {
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .max()
}

/// The running container `req` names in pod `ns/pod`.
fn resolve(
    ctx: &ExecContext,
    ns: &str,
    pod: &str,
    req: &ExecRequest,
) -> Result<ExecTarget, ExecRefused> {
    if req.command.is_empty() {
        return Err(ExecRefused::BadRequest("no command given".into()));
    }
    let key = format!("{ns}/{pod}");
    let p = informer::cached(&ctx.cache, &key)
        .ok_or_else(|| ExecRefused::NotFound(format!("pod {key} is not on this node")))?;
    let name = req
        .container
        .clone()
        .or_else(|| p.spec.containers.first().map(|c| c.name.clone()))
        .unwrap_or_default();
    if !p.spec.containers.iter().any(|c| c.name == name) {
        return Err(ExecRefused::BadRequest(format!(
            "container {name} is not valid for pod {key}"
        )));
    }
    let uid = p.metadata.uid.clone().unwrap_or_default();
    let not_running =
        || ExecRefused::BadRequest(format!("container {name} in pod {key} is not running"));
    let attempt =
        last_attempt(&ctx.layout.container_attempts(&uid, &name)).ok_or_else(not_running)?;
    let dir = ctx.layout.container_dir(&uid, &name, attempt);
    let running = ShimHandle::adopt(&dir.shim_dir())
        .ok()
        .and_then(|h| h.state().ok())
        .is_some_and(|s| s.status == Status::Running);
    if !running {
        return Err(not_running());
    }
    Ok(ExecTarget {
        exe: ctx.exe.clone(),
        shim_args: ctx.shim_args.clone(),
        runtime_root: ctx.layout.runtime_root(),
        container_id: layout::container_id(&uid, &name, attempt),
    })
}

async fn respond(conn: &mut Conn, code: &str, body: &str) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {code}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).await?;
    conn.write_all(body.as_bytes()).await?;
    conn.shutdown().await
}

/// Serves one exec request whose head has been read; `body` holds the
/// bytes read past the head.
pub async fn handle(
    mut conn: Conn,
    head: &str,
    mut body: Vec<u8>,
    ctx: &ExecContext,
) -> std::io::Result<()> {
    let target = head.split_whitespace().nth(1).unwrap_or_default();
    let Some((ns, pod)) = wire::parse_target(target) else {
        return respond(&mut conn, "404 Not Found", "use POST /exec/NAMESPACE/POD\n").await;
    };
    let length = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    if length > 64 << 10 {
        return respond(&mut conn, "413 Payload Too Large", "request too large\n").await;
    }
    while body.len() < length {
        let mut chunk = vec![0u8; length - body.len()];
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        body.extend_from_slice(&chunk[..n]);
    }
    let req: ExecRequest = match serde_json::from_slice(&body[..length]) {
        Ok(r) => r,
        Err(e) => {
            let msg = format!("invalid exec request: {e}\n");
            return respond(&mut conn, "400 Bad Request", &msg).await;
        }
    };
    let leftover = body.split_off(length);
    let ctx2 = ctx.clone();
    let req2 = req.clone();
    let resolved = tokio::task::spawn_blocking(move || resolve(&ctx2, &ns, &pod, &req2))
        .await
        .map_err(std::io::Error::other)?;
    let target = match resolved {
        Ok(t) => t,
        Err(e) => return respond(&mut conn, e.status(), &format!("{e}\n")).await,
    };
    conn.write_all(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.drover.exec\r\nConnection: close\r\n\r\n",
    )
    .await?;
    if req.tty {
        run_tty(conn, leftover, &target, &req).await
    } else {
        run_pipes(conn, leftover, &target, &req).await
    }
}

/// Input the client sends.
enum Input {
    Data(Vec<u8>),
    Close,
    Resize(u16, u16),
}

/// Reads the client's frames into `tx` until it hangs up.
async fn read_input(
    leftover: Vec<u8>,
    rd: ReadHalf<Conn>,
    tx: mpsc::UnboundedSender<Option<Input>>,
) {
    let mut rd = AsyncReadExt::chain(std::io::Cursor::new(leftover), rd);
    loop {
        let mut h = [0u8; 5];
        if rd.read_exact(&mut h).await.is_err() {
            break;
        }
        let Ok((channel, len)) = wire::decode_header(h) else {
            break;
        };
        let mut p = vec![0u8; len];
        if rd.read_exact(&mut p).await.is_err() {
            break;
        }
        let input = match channel {
            Channel::Stdin => Input::Data(p),
            Channel::StdinClose => Input::Close,
            Channel::Resize => match wire::parse_resize(&p) {
                Some((c, r)) => Input::Resize(c, r),
                None => continue,
            },
            _ => continue,
        };
        if tx.send(Some(input)).is_err() {
            return;
        }
    }
    // The client went away.
    let _ = tx.send(None);
}

async fn pump<R: AsyncRead + Unpin>(mut r: R, channel: Channel, out: mpsc::Sender<Vec<u8>>) {
    let mut buf = vec![0u8; 16 << 10];
    while let Ok(n) = r.read(&mut buf).await {
        if n == 0 || out.send(wire::encode(channel, &buf[..n])).await.is_err() {
            break;
        }
    }
}

fn terminate(child_id: Option<u32>) {
    if let Some(pid) = child_id.and_then(|p| i32::try_from(p).ok()) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
}

/// Relays until the command has exited and its output is drained (or
/// half a second has passed since it exited: background children may
/// keep the output open), then sends the exit code.
async fn relay(
    child: &mut tokio::process::Child,
    mut wr: WriteHalf<Conn>,
    mut out_rx: mpsc::Receiver<Vec<u8>>,
    mut in_rx: mpsc::UnboundedReceiver<Option<Input>>,
    mut on_input: impl FnMut(Input),
) -> std::io::Result<()> {
    let child_id = child.id();
    let mut exited: Option<std::process::ExitStatus> = None;
    let mut client_gone = false;
    let mut drain_deadline = None;
    loop {
        let deadline = async move {
            match drain_deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            status = child.wait(), if exited.is_none() => {
                exited = Some(status?);
                drain_deadline = Some(tokio::time::Instant::now() + Duration::from_millis(500));
            }
            frame = out_rx.recv() => match frame {
                Some(f) => {
                    if wr.write_all(&f).await.is_err() {
                        client_gone = true;
                        terminate(child_id);
                    }
                }
                None if exited.is_some() => break,
                None => {
                    // Output closed first: only the exit is left.
                    let status = child.wait().await?;
                    exited = Some(status);
                    break;
                }
            },
            input = in_rx.recv(), if !client_gone => match input {
                Some(Some(i)) => on_input(i),
                // The client hung up: stop the command.
                Some(None) | None => {
                    client_gone = true;
                    terminate(child_id);
                }
            },
            () = deadline => break,
        }
    }
    let code = exited.map_or(1, super::exit_code);
    wr.write_all(&wire::encode(Channel::Exit, &wire::exit_payload(code)))
        .await?;
    wr.shutdown().await
}

async fn refuse_spawn(mut wr: WriteHalf<Conn>, e: std::io::Error) -> std::io::Result<()> {
    let msg = format!("starting the exec helper: {e}\r\n");
    wr.write_all(&wire::encode(Channel::Stderr, msg.as_bytes()))
        .await?;
    wr.write_all(&wire::encode(Channel::Exit, &wire::exit_payload(126)))
        .await
}

async fn run_pipes(
    conn: Conn,
    leftover: Vec<u8>,
    target: &ExecTarget,
    req: &ExecRequest,
) -> std::io::Result<()> {
    let mut cmd = tokio::process::Command::from(target.command(&req.command, false));
    cmd.stdin(if req.stdin {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let (rd, wr) = tokio::io::split(conn);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return refuse_spawn(wr, e).await,
    };
    let (out_tx, out_rx) = mpsc::channel::<Vec<u8>>(16);
    if let Some(o) = child.stdout.take() {
        tokio::spawn(pump(o, Channel::Stdout, out_tx.clone()));
    }
    if let Some(e) = child.stderr.take() {
        tokio::spawn(pump(e, Channel::Stderr, out_tx.clone()));
    }
    drop(out_tx);
    // Input is written on its own task so a full pipe never stalls output.
    let (stdin_tx, mut stdin_rx) = mpsc::unbounded_channel::<Vec<u8>>();
    if let Some(mut stdin) = child.stdin.take() {
        tokio::spawn(async move {
            while let Some(d) = stdin_rx.recv().await {
                if stdin.write_all(&d).await.is_err() {
                    break;
                }
            }
        });
    }
    let (in_tx, in_rx) = mpsc::unbounded_channel();
    let reader = tokio::spawn(read_input(leftover, rd, in_tx));
    let mut stdin = Some(stdin_tx);
    let result = relay(&mut child, wr, out_rx, in_rx, |input| match input {
        Input::Data(d) => {
            if let Some(s) = &stdin
                && s.send(d).is_err()
            {
                stdin = None;
            }
        }
        Input::Close => stdin = None,
        Input::Resize(..) => {}
    })
    .await;
    reader.abort();
    result
}

fn set_window(master: &OwnedFd, cols: u16, rows: u16) {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a winsize we own from a valid pty fd.
    unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
}

async fn run_tty(
    conn: Conn,
    leftover: Vec<u8>,
    target: &ExecTarget,
    req: &ExecRequest,
) -> std::io::Result<()> {
    let pty = nix::pty::openpty(None, None).map_err(std::io::Error::from)?;
    let (master, slave) = (pty.master, pty.slave);
    let mut std_cmd = target.command(&req.command, true);
    std_cmd
        .stdin(Stdio::from(slave.try_clone()?))
        .stdout(Stdio::from(slave.try_clone()?))
        .stderr(Stdio::from(slave));
    let mut cmd = tokio::process::Command::from(std_cmd);
    let spawned = cmd.spawn();
    drop(cmd); // our copies of the slave: EIO on the master once the command ends
    let (rd, wr) = tokio::io::split(conn);
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => return refuse_spawn(wr, e).await,
    };
    // The master is read and written on blocking threads.
    let (out_tx, out_rx) = mpsc::channel::<Vec<u8>>(16);
    let mut reading = std::fs::File::from(master.try_clone()?);
    tokio::task::spawn_blocking(move || {
        let mut buf = vec![0u8; 16 << 10];
        while let Ok(n) = reading.read(&mut buf) {
            if n == 0
                || out_tx
                    .blocking_send(wire::encode(Channel::Stdout, &buf[..n]))
                    .is_err()
            {
                break;
            }
        }
    });
    let (stdin_tx, stdin_rx) = std::sync::mpsc::channel::<Vec<u8>>();
    let mut writing = std::fs::File::from(master.try_clone()?);
    tokio::task::spawn_blocking(move || {
        while let Ok(d) = stdin_rx.recv() {
            if writing.write_all(&d).is_err() {
                break;
            }
        }
    });
    let (in_tx, in_rx) = mpsc::unbounded_channel();
    let reader = tokio::spawn(read_input(leftover, rd, in_tx));
    let result = relay(&mut child, wr, out_rx, in_rx, |input| match input {
        Input::Data(d) => {
            let _ = stdin_tx.send(d);
        }
        // ^D is how a terminal ends input.
        Input::Close => {
            let _ = stdin_tx.send(vec![4]);
        }
        Input::Resize(cols, rows) => set_window(&master, cols, rows),
    })
    .await;
    reader.abort();
    result
}
