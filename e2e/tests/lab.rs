//! The harness itself, against the real kernel: hosts reach each other over
//! the lab bridge, faults cut exactly what they say, and a dropped lab leaves
//! nothing behind.

use std::time::Duration;

use drover_e2e::faults::Fault;
use drover_e2e::pki::LabPki;
use drover_e2e::{HostProcess, Lab, drover_bin, run, skip_unless_supported};

/// Whether `from` gets an answer from `url` (trusting `ca`) within one second.
fn reachable(from: &drover_e2e::Host, ca: &str, url: &str) -> bool {
    let out = from.exec("curl", &["-sf", "--max-time", "1", "--cacert", ca, url]);
    out.status.success()
}

fn start_server(
    lab_host: &drover_e2e::Host,
    dir: &std::path::Path,
    pki: &LabPki,
) -> (HostProcess, String) {
    pki.issue("server", "api", &[&lab_host.ip]);
    let mut args = vec![
        "server".to_string(),
        "--data-dir".into(),
        dir.display().to_string(),
        "--listen".into(),
        format!("{}:0", lab_host.ip),
    ];
    args.extend(pki.serving_flags("api"));
    let server = HostProcess::spawn("server", lab_host, &drover_bin(), &args);
    let line = server.wait_for_line("drover server listening on ", Duration::from_secs(30));
    let url = line
        .split("listening on ")
        .nth(1)
        .unwrap_or_default()
        .trim()
        .to_string();
    (server, url)
}

#[test]
fn hosts_talk_over_the_bridge_and_faults_cut_what_they_say() {
    if skip_unless_supported("hosts_talk_over_the_bridge_and_faults_cut_what_they_say") {
        return;
    }
    let tmp = std::env::temp_dir().join(format!("drover-e2e-lab-{}", std::process::id()));
    let lab = Lab::new();
    let a = lab.add_host("a");
    let b = lab.add_host("b");
    let c = lab.add_host("c");
    let pki = LabPki::at(&tmp.join("pki"));
    let (_server, url) = start_server(&a, &tmp.join("server"), &pki);
    let health = format!("{url}/healthz");
    let ca = pki.file("ca.crt");
    let reachable = |from: &drover_e2e::Host, url: &str| reachable(from, &ca, url);

    assert!(reachable(&b, &health), "b reaches a's server");
    assert!(reachable(&a, &health), "a reaches itself");

    lab.inject(&a, &Fault::Isolated);
    assert!(!reachable(&b, &health), "isolated a is unreachable from b");
    assert!(!reachable(&c, &health), "isolated a is unreachable from c");
    a.heal();
    assert!(reachable(&b, &health), "healed a is reachable again");

    lab.inject(&a, &Fault::CutFrom(vec!["b".into()]));
    assert!(!reachable(&b, &health), "a is cut from b");
    assert!(reachable(&c, &health), "but not from c");
    a.heal();

    lab.inject(&b, &Fault::Loss(100));
    assert!(!reachable(&b, &health), "100% loss on b drops everything");
    lab.inject(&b, &Fault::Loss(0));
    assert!(reachable(&b, &health), "0% loss drops nothing");

    let disk = tmp.join("small");
    lab.small_disk(&disk, 1);
    let big = vec![0u8; 2 << 20];
    assert!(
        std::fs::write(disk.join("fill"), big).is_err(),
        "a 1 MiB disk refuses 2 MiB"
    );

    let netns_prefix = a.netns.trim_end_matches("-a").to_string();
    drop(_server);
    drop(lab);
    let left = String::from_utf8_lossy(&run("ip", &["netns", "list"]).stdout).into_owned();
    assert!(
        !left.contains(&netns_prefix),
        "namespaces left behind: {left}"
    );
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    assert!(
        !mounts.contains(&disk.display().to_string()),
        "tmpfs left mounted"
    );
    let _ = std::fs::remove_dir_all(&tmp);
}
