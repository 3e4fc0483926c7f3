//! Image store against real inputs: the busybox layout built by the example
//! script, as a directory, a tarball and a docker-save archive, and a real
//! registry (Debian's docker-registry) pushed to and pulled from.

mod common;

use std::collections::HashSet;
use std::fs;
use std::path::Path;

use drover_node_agent::image::{
    Digest, ImageError, ImageStore, PullError, PullOptions, PullPolicy, PushOptions, import,
};

fn store() -> (tempfile::TempDir, ImageStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = ImageStore::open(dir.path()).expect("open store");
    (dir, store)
}

#[test]
fn imports_layout_dir_and_tarball_named_by_annotation() {
    let work = tempfile::tempdir().expect("tempdir");
    let Some(layout) = common::build_busybox(work.path()) else {
        return;
    };
    for source in [layout.clone(), work.path().join("layout.tar")] {
        let (_d, store) = store();
        let images = import::import(&store, &source, None).expect("import");
        assert_eq!(images.len(), 1);
        assert_eq!(images[0].name, "docker.io/example/busybox:1");
        let image = store.resolve("example/busybox:1").expect("resolve");
        let cmd = image.config.config().as_ref().and_then(|c| c.cmd().clone());
        assert_eq!(cmd.map(|c| c[0].clone()).as_deref(), Some("busybox"));
        let lowers = store.prepare_layers(&image).expect("unpack");
        assert_eq!(lowers.len(), 1);
        assert!(lowers[0].join("bin/busybox").is_file());
        assert!(lowers[0].join("www/index.html").is_file());
        // Unpacked once: a second prepare reuses the directory.
        assert_eq!(store.prepare_layers(&image).expect("again"), lowers);
    }
}

#[test]
fn gc_keeps_images_in_use_and_sweeps_the_rest() {
    let work = tempfile::tempdir().expect("tempdir");
    let Some(layout) = common::build_busybox(work.path()) else {
        return;
    };
    let (_d, store) = store();
    let image = import::import(&store, &layout, None)
        .expect("import")
        .remove(0);
    store.prepare_layers(&image).expect("unpack");
    let in_use: HashSet<String> = [image.name.clone()].into();
    let report = store.gc(0, &in_use).expect("gc");
    assert!(report.removed_images.is_empty());
    assert!(store.resolve(&image.name).is_ok());
    assert_eq!(store.layers().list().expect("layers").len(), 1);

    // Under budget: nothing happens even when unused.
    let report = store.gc(u64::MAX, &HashSet::new()).expect("gc");
    assert!(report.removed_images.is_empty());
    let report = store.gc(0, &HashSet::new()).expect("gc");
    assert_eq!(report.removed_images, std::slice::from_ref(&image.name));
    assert!(report.bytes_after < report.bytes_before);
    assert!(store.blobs().list().expect("blobs").is_empty());
}

#[test]
fn imports_docker_save_archive() {
    let work = tempfile::tempdir().expect("tempdir");
    let Some(layout) = common::build_busybox(work.path()) else {
        return;
    };
    // Shape a docker-save archive out of the layout: manifest.json naming
    // the config and the layer by path, and no index.json.
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(layout.join("index.json")).expect("index")).expect("json");
    let mdigest = index["manifests"][0]["digest"].as_str().expect("digest");
    let blob = |d: &str| format!("blobs/sha256/{}", &d["sha256:".len()..]);
    let manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(layout.join(blob(mdigest))).expect("m")).expect("json");
    let save = serde_json::json!([{
        "Config": blob(manifest["config"]["digest"].as_str().expect("c")),
        "RepoTags": ["saved/busybox:2"],
        "Layers": [blob(manifest["layers"][0]["digest"].as_str().expect("l"))],
    }]);
    fs::remove_file(layout.join("index.json")).expect("rm index");
    fs::write(layout.join("manifest.json"), save.to_string()).expect("write");

    let (_d, store) = store();
    let images = import::import(&store, &layout, None).expect("import docker save");
    assert_eq!(images[0].name, "docker.io/saved/busybox:2");
    let lowers = store.prepare_layers(&images[0]).expect("unpack");
    assert!(lowers[0].join("bin/busybox").is_file());
}

#[test]
fn corrupt_blob_in_layout_is_rejected_and_not_named() {
    let work = tempfile::tempdir().expect("tempdir");
    let Some(layout) = common::build_busybox(work.path()) else {
        return;
    };
    // Flip the layer blob's content: its digest no longer matches.
    for entry in fs::read_dir(layout.join("blobs/sha256")).expect("blobs") {
        let path = entry.expect("entry").path();
        if fs::metadata(&path).expect("meta").len() > 10_000 {
            let mut data = fs::read(&path).expect("read");
            data[5000] ^= 0xff;
            fs::write(&path, data).expect("write");
        }
    }
    let (_d, store) = store();
    let err = import::import(&store, &layout, None).expect_err("must fail");
    assert!(err.to_string().contains("bad digest"), "{err}");
    assert!(!store.contains("example/busybox:1"));
    assert!(matches!(
        store.resolve("example/busybox:1"),
        Err(ImageError::UnknownImage(_))
    ));
}

/// Imports the layout into a store of its own and pushes it with
/// `ImageStore::push` (what `drover image push` runs); returns the digest.
async fn push_layout(layout: &Path, registry: &str, name: &str) -> Digest {
    let (_d, source) = store();
    import::import(&source, layout, None).expect("import");
    let mut pushed = Vec::new();
    let digest = source
        .push(
            "example/busybox:1",
            &format!("{registry}/{name}"),
            &PushOptions { insecure: true },
            &mut |d, _| pushed.push(d.clone()),
        )
        .await
        .expect("push");
    assert_eq!(pushed.len(), 2, "config and one layer: {pushed:?}");
    let refused = source
        .push(
            "example/busybox:1",
            &format!("127.0.0.1:{}/{name}", common::free_port()),
            &PushOptions { insecure: true },
            &mut |_, _| {},
        )
        .await
        .expect_err("nothing listens there");
    assert!(
        refused.to_string().contains("pushing to 127.0.0.1:"),
        "{refused}"
    );
    digest
}

#[tokio::test]
async fn pulls_from_a_real_registry_with_progress_and_clear_errors() {
    let work = tempfile::tempdir().expect("tempdir");
    let Some(layout) = common::build_busybox(work.path()) else {
        return;
    };
    let Some(registry) = common::Registry::start() else {
        return;
    };
    let pushed = push_layout(&layout, &registry.addr, "example/busybox:1").await;

    let (_d, store) = store();
    let opts = PullOptions {
        insecure_registries: vec![registry.addr.clone()],
        connect_timeout: Some(std::time::Duration::from_secs(2)),
    };
    let name = format!("{}/example/busybox:1", registry.addr);
    let mut events = Vec::new();
    let image = store
        .ensure_image(&name, PullPolicy::IfNotPresent, &opts, &mut |p| {
            events.push(p)
        })
        .await
        .expect("pull");
    assert_eq!(image.manifest, pushed, "the manifest travels byte for byte");
    assert_eq!(image.layers.len(), 1);
    let layer_events: Vec<_> = events
        .iter()
        .filter(|p| p.digest == image.layers[0])
        .collect();
    let last = layer_events.last().expect("progress for the layer");
    assert_eq!(last.received, last.total);
    assert!(!last.cached);
    let lowers = store.prepare_layers(&image).expect("unpack");
    assert!(lowers[0].join("bin/busybox").is_file());

    // Present now: IfNotPresent does not touch the registry; Always reuses blobs.
    let mut again = Vec::new();
    store
        .ensure_image(&name, PullPolicy::Always, &opts, &mut |p| again.push(p))
        .await
        .expect("re-pull");
    assert!(again.iter().all(|p| p.cached));

    let missing = format!("{}/example/nothing:1", registry.addr);
    let err = store
        .pull(&missing, &opts, &mut |_| {})
        .await
        .expect_err("unknown");
    assert!(matches!(err, PullError::UnknownImage(_)), "{err:?}");
    assert_eq!(err.reason(), "ErrImagePull");

    let pinned = format!(
        "{}/example/busybox@{}",
        registry.addr,
        Digest::of(b"not the manifest")
    );
    let err = store
        .pull(&pinned, &opts, &mut |_| {})
        .await
        .expect_err("pinned");
    assert!(
        matches!(
            err,
            PullError::UnknownImage(_) | PullError::BadDigest { .. }
        ),
        "{err:?}"
    );

    let err = store
        .ensure_image("example/absent:1", PullPolicy::Never, &opts, &mut |_| {})
        .await
        .expect_err("never");
    assert_eq!(err.reason(), "ErrImageNeverPull");

    let down = format!("127.0.0.1:{}", common::free_port());
    let opts_down = PullOptions {
        insecure_registries: vec![down.clone()],
        ..opts.clone()
    };
    let err = store
        .pull(
            &format!("{down}/example/busybox:1"),
            &opts_down,
            &mut |_| {},
        )
        .await
        .expect_err("down");
    assert!(matches!(err, PullError::Unreachable { .. }), "{err:?}");
    assert!(err.to_string().contains("unreachable"), "{err}");

    // GC: with a zero budget and nothing in use, everything goes.
    let report = store.gc(0, &HashSet::new()).expect("gc");
    assert_eq!(report.removed_images.len(), 1);
    assert!(store.list().is_empty());
    assert!(store.layers().list().expect("layers").is_empty());
}
