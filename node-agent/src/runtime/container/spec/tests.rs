//! Spec generation tests: pure, no root needed.

use oci_spec::image::{ConfigBuilder, ImageConfigurationBuilder};
use oci_spec::runtime::LinuxNamespaceType as Ns;

use super::*;

fn base() -> ContainerSpec {
    ContainerSpec {
        hostname: "web-1".into(),
        process: ProcessSpec {
            args: vec!["busybox".into(), "true".into()],
            env: vec!["PATH=/bin".into()],
            cwd: String::new(),
            uid: 0,
            gid: 0,
            additional_gids: vec![],
        },
        rootfs: "/var/lib/drover/c1/rootfs".into(),
        readonly_rootfs: false,
        network: NetworkMode::Join("/run/netns/pod-1".into()),
        resources: Resources {
            cpu_limit_millis: Some(500),
            cpu_request_millis: Some(250),
            memory_limit_bytes: Some(64 << 20),
            pids_limit: Some(100),
        },
        cgroups_path: "/drover/pod-1/c1".into(),
        cap_add: vec![],
        cap_drop: vec![],
        privileged: false,
    }
}

#[test]
fn hardened_by_default() {
    let spec = runtime_spec(&base()).expect("spec");
    let process = spec.process().as_ref().expect("process");
    assert_eq!(process.no_new_privileges(), Some(true));
    assert_eq!(process.cwd(), &std::path::PathBuf::from("/"));
    let caps = process.capabilities().as_ref().expect("caps");
    let bounding = caps.bounding().as_ref().expect("bounding");
    assert_eq!(bounding.len(), 14);
    assert!(!bounding.contains(&Capability::SysAdmin));
    assert!(bounding.contains(&Capability::NetBindService));
    let linux = spec.linux().as_ref().expect("linux");
    assert!(linux.seccomp().is_some());
    let masked = linux.masked_paths().as_ref().expect("masked");
    assert!(masked.iter().any(|p| p == "/proc/kcore"));
    assert!(
        linux
            .readonly_paths()
            .as_ref()
            .expect("ro")
            .iter()
            .any(|p| p == "/proc/sys")
    );
}

#[test]
fn namespaces_include_cgroup_and_the_given_netns() {
    let spec = runtime_spec(&base()).expect("spec");
    let ns = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().clone())
        .expect("ns");
    let types: Vec<Ns> = ns.iter().map(|n| n.typ()).collect();
    for want in [
        Ns::Pid,
        Ns::Mount,
        Ns::Uts,
        Ns::Ipc,
        Ns::Cgroup,
        Ns::Network,
    ] {
        assert!(types.contains(&want), "{want:?}");
    }
    let net = ns.iter().find(|n| n.typ() == Ns::Network).expect("net");
    assert_eq!(
        net.path().as_deref(),
        Some(std::path::Path::new("/run/netns/pod-1"))
    );

    let mut host = base();
    host.network = NetworkMode::Host;
    let spec = runtime_spec(&host).expect("spec");
    let ns = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().clone())
        .expect("ns");
    assert!(!ns.iter().any(|n| n.typ() == Ns::Network));
}

#[test]
fn resources_translate_kubernetes_units() {
    let spec = runtime_spec(&base()).expect("spec");
    let r = spec
        .linux()
        .as_ref()
        .and_then(|l| l.resources().clone())
        .expect("resources");
    let cpu = r.cpu().as_ref().expect("cpu");
    assert_eq!(cpu.quota(), Some(50_000));
    assert_eq!(cpu.period(), Some(100_000));
    assert_eq!(cpu.shares(), Some(256));
    assert_eq!(r.memory().as_ref().and_then(|m| m.limit()), Some(64 << 20));
    assert_eq!(r.pids().as_ref().map(|p| p.limit()), Some(100));
    assert_eq!(cpu_quota(1), 1000, "the kernel minimum");
    assert_eq!(cpu_shares(1), 2);
}

#[test]
fn capability_changes_and_privileged() {
    let mut c = base();
    c.cap_add = vec![Capability::NetAdmin];
    c.cap_drop = vec![Capability::NetRaw, Capability::Mknod];
    let caps = effective_capabilities(&c);
    assert!(caps.contains(&Capability::NetAdmin));
    assert!(!caps.contains(&Capability::NetRaw));
    assert_eq!(caps.len(), 13);

    c.privileged = true;
    let spec = runtime_spec(&c).expect("spec");
    let linux = spec.linux().as_ref().expect("linux");
    assert!(linux.seccomp().is_none());
    assert_eq!(linux.masked_paths().as_ref().map(Vec::len), Some(0));
    assert_eq!(
        spec.process().as_ref().and_then(|p| p.no_new_privileges()),
        Some(false)
    );
}

#[test]
fn seccomp_denies_dangerous_syscalls_with_eperm() {
    let profile = seccomp::default_profile().expect("profile");
    let rules = profile.syscalls().as_ref().expect("rules");
    let names: Vec<&String> = rules.iter().flat_map(|r| r.names()).collect();
    for s in ["kexec_load", "init_module", "bpf", "keyctl", "mount"] {
        assert!(names.iter().any(|n| *n == s), "{s}");
    }
    assert!(!names.iter().any(|n| *n == "read" || *n == "execve"));
    assert_eq!(rules[0].errno_ret(), Some(1));
}

#[test]
fn process_follows_kubernetes_command_and_args_rules() {
    let config = ConfigBuilder::default()
        .entrypoint(vec!["/entry".to_string()])
        .cmd(vec!["serve".to_string()])
        .env(vec!["PATH=/bin".to_string(), "MODE=prod".to_string()])
        .working_dir("/www".to_string())
        .user("1000:2000".to_string())
        .build()
        .expect("config");
    let image = ImageConfigurationBuilder::default()
        .config(config)
        .build()
        .expect("image");
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();

    let p = process_from_image(&image, None, None, &[]);
    assert_eq!(p.args, s(&["/entry", "serve"]));
    assert_eq!((p.uid, p.gid), (1000, 2000));
    assert_eq!(p.cwd, "/www");
    let p = process_from_image(&image, None, Some(&s(&["debug"])), &[]);
    assert_eq!(p.args, s(&["/entry", "debug"]));
    let p = process_from_image(&image, Some(&s(&["sh"])), None, &[]);
    assert_eq!(p.args, s(&["sh"]));
    let p = process_from_image(&image, Some(&s(&["sh"])), Some(&s(&["-c", "x"])), &[]);
    assert_eq!(p.args, s(&["sh", "-c", "x"]));
    let p = process_from_image(&image, None, None, &[("MODE".into(), "dev".into())]);
    assert_eq!(p.env, s(&["PATH=/bin", "MODE=dev"]));
}
