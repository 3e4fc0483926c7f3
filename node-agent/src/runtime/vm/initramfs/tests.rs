use std::os::unix::fs::symlink;

use super::*;

fn layer(root: &Path, files: &[(&str, &str)]) -> PathBuf {
    for (path, data) in files {
        let p = root.join(path);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        if let Some(dir) = path.strip_suffix('/') {
            fs::create_dir_all(root.join(dir)).unwrap();
        } else {
            fs::write(p, data).unwrap();
        }
    }
    root.to_path_buf()
}

fn keys(tree: &BTreeMap<PathBuf, PathBuf>) -> Vec<String> {
    tree.keys().map(|k| k.display().to_string()).collect()
}

#[test]
fn upper_layers_win_and_files_replace_directories() {
    let t = tempfile::tempdir().unwrap();
    let low = layer(
        &t.path().join("low"),
        &[("etc/a", "low"), ("x/y", "1"), ("bin/sh", "sh")],
    );
    let up = layer(&t.path().join("up"), &[("etc/a", "up"), ("x", "file now")]);
    let tree = merge_layers(&[up.clone(), low]).unwrap();
    assert_eq!(keys(&tree), ["bin", "bin/sh", "etc", "etc/a", "x"]);
    assert_eq!(tree[Path::new("etc/a")], up.join("etc/a"));
    assert_eq!(tree[Path::new("x")], up.join("x"));
}

#[test]
fn whiteouts_and_opaque_directories_hide_lower_files() {
    let t = tempfile::tempdir().unwrap();
    let low = layer(
        &t.path().join("low"),
        &[("gone/f", "1"), ("keep", "k"), ("op/old", "o")],
    );
    let up = layer(&t.path().join("up"), &[("op/new", "n")]);
    let whiteout = up.join("gone");
    nix::sys::stat::mknod(
        &whiteout,
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::empty(),
        0,
    )
    .map_err(|e| eprintln!("skipping whiteout check: mknod needs root: {e}"))
    .ok();
    let opaque = is_root() && {
        let p = std::ffi::CString::new(up.join("op").to_str().unwrap()).unwrap();
        // SAFETY: valid strings and buffer.
        unsafe {
            libc::lsetxattr(
                p.as_ptr(),
                c"trusted.overlay.opaque".as_ptr(),
                b"y".as_ptr().cast(),
                1,
                0,
            ) == 0
        }
    };
    let tree = merge_layers(&[up, low]).unwrap();
    let names = keys(&tree);
    if whiteout.exists() {
        assert!(!names.iter().any(|n| n.starts_with("gone")), "{names:?}");
    }
    if opaque {
        assert!(!names.contains(&"op/old".to_string()), "{names:?}");
    } else {
        eprintln!("skipping opaque check: trusted xattrs need root");
    }
    assert!(names.contains(&"op/new".to_string()) && names.contains(&"keep".to_string()));
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

#[test]
fn base_archive_holds_image_init_and_modules_and_is_cached() {
    let t = tempfile::tempdir().unwrap();
    let img = layer(
        &t.path().join("l"),
        &[("bin/busybox", "bb"), ("init", "theirs")],
    );
    symlink("busybox", img.join("bin/sh")).unwrap();
    let m = t.path().join("virtio.ko");
    fs::write(&m, "module").unwrap();
    let inputs = BaseInputs {
        lowers: &[img],
        init: b"ours",
        modules: &[m],
    };
    let key = base_key("sha256:abc", &inputs);
    assert_ne!(key, base_key("sha256:abd", &inputs));
    let cache = t.path().join("cache");
    let base = ensure_base(&cache, &key, &inputs).unwrap();
    let bytes = fs::read(&base).unwrap();
    let text = String::from_utf8_lossy(&bytes);
    for needle in [
        "bin/busybox",
        "bin/sh",
        "dev/console",
        "drover/modules/virtio.ko",
        "ours",
        "virtio.ko\n",
    ] {
        assert!(text.contains(needle), "{needle} missing");
    }
    assert!(
        !text.contains("theirs"),
        "the image's /init must be replaced"
    );
    // Cached: a second call does not rebuild.
    fs::write(&base, "cached").unwrap();
    assert_eq!(
        fs::read(ensure_base(&cache, &key, &inputs).unwrap()).unwrap(),
        b"cached"
    );
    // The run's archive follows the base.
    let cfg = GuestConfig {
        args: vec!["sh".into()],
        ..GuestConfig::default()
    };
    let run = t.path().join("run.cpio");
    assemble(&base, &cfg, &run).unwrap();
    let all = fs::read(&run).unwrap();
    assert!(all.starts_with(b"cached"));
    assert!(String::from_utf8_lossy(&all).contains("drover/config"));
}

#[test]
fn a_missing_layer_names_the_path() {
    let inputs = BaseInputs {
        lowers: &[PathBuf::from("/nonexistent/layer")],
        init: b"",
        modules: &[],
    };
    let e = write_base(&inputs, Vec::new()).unwrap_err();
    assert!(e.to_string().contains("/nonexistent/layer"), "{e}");
}
