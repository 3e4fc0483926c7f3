//! The README's main job: `drover dev --apply examples/web` runs the control
//! plane and, as root, a local node with the example image; the web service
//! answers on the addresses it prints; Ctrl-C (SIGINT) stops everything and
//! leaves no container, bridge or mount behind.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::pod_net::PodNet;
use common::{curl, drover_bin};

fn skip_reason() -> Option<&'static str> {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !root {
        return Some("a local node needs root");
    }
    if !Path::new("/bin/busybox").exists() {
        return Some("/bin/busybox missing (apt-get install busybox-static)");
    }
    None
}

#[test]
fn dev_serves_the_example_web_service_and_cleans_up_on_ctrl_c() {
    if let Some(why) = skip_reason() {
        eprintln!("skipped dev_serves_the_example_web_service_and_cleans_up_on_ctrl_c: {why}");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("dev");
    let net = PodNet::unique();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/web");
    let mut child = Command::new(drover_bin())
        .args(["dev", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .args(["--bridge", &net.bridge, "--pod-cidr", &net.cidr, "--apply"])
        .arg(&examples)
        .env("RUST_LOG", "warn")
        // dev writes its client config there, never into the real ~/.drover.
        .env("DROVER_CONFIG", dir.path().join("config"))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn drover dev");
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            eprintln!("dev: {line}");
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut urls = Vec::new();
    let mut service_urls = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx.recv_timeout(left).unwrap_or_else(|_| {
            let _ = child.kill();
            panic!("drover dev did not report where the pods answer");
        });
        if let Some((_, url)) = line.split_once(" answers at ") {
            urls.push(url.to_string());
        }
        if let Some(rest) = line.strip_prefix("service ") {
            // `service web: http://VIP:80/ and http://127.0.0.1:30080/`
            service_urls.extend(
                rest.split_whitespace()
                    .filter(|w| w.starts_with("http://"))
                    .map(str::to_string),
            );
        }
        if line.starts_with("Try:") {
            break;
        }
    }
    assert_eq!(urls.len(), 3, "three replicas of examples/web: {urls:?}");
    for url in &urls {
        let page = curl(url).unwrap_or_else(|| panic!("{url} does not answer"));
        assert!(page.contains("Hello from Drover"), "{url}: {page}");
    }
    // The Service: its cluster IP and its NodePort on 127.0.0.1.
    assert_eq!(
        service_urls.len(),
        2,
        "cluster IP and NodePort: {service_urls:?}"
    );
    for url in &service_urls {
        let deadline = Instant::now() + Duration::from_secs(10);
        let page = loop {
            match curl(url) {
                Some(page) => break page,
                None if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
                None => panic!("{url} does not answer"),
            }
        };
        assert!(page.contains("Hello from Drover"), "{url}: {page}");
    }

    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let start = Instant::now();
    let status = loop {
        if let Ok(Some(s)) = child.try_wait() {
            break s;
        }
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("drover dev did not stop within 60 s of SIGINT");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "drover dev exited with {status}");
    for url in &urls {
        assert!(curl(url).is_none(), "{url} still answers after dev stopped");
    }
    let links = Command::new("ip")
        .args(["-o", "link"])
        .output()
        .expect("ip link");
    let links = String::from_utf8_lossy(&links.stdout);
    assert!(
        !links.contains(&format!(" {}:", net.bridge)),
        "bridge left: {links}"
    );
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    assert!(
        !mounts.contains(&data.display().to_string()),
        "mounts left under the dev data dir"
    );
}
