//! Unpack tests: layers built in memory, unpacked through the layer store.

use std::io::Write;
use std::os::unix::fs::FileTypeExt;

use flate2::Compression;
use flate2::write::GzEncoder;

use super::*;

enum E<'a> {
    File(&'a str, &'a [u8]),
    Dir(&'a str),
    Symlink(&'a str, &'a str),
    /// A name written raw, bypassing the tar builder's own checks.
    RawName(&'a [u8]),
}

fn layer(entries: &[E<'_>]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o755);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        let r = match e {
            E::File(p, data) => {
                h.set_size(data.len() as u64);
                h.set_entry_type(tar::EntryType::Regular);
                b.append_data(&mut h, p, *data)
            }
            E::Dir(p) => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_size(0);
                b.append_data(&mut h, p, &[][..])
            }
            E::Symlink(p, target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_size(0);
                b.append_link(&mut h, p, target)
            }
            E::RawName(name) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(1);
                if let Some(g) = h.as_gnu_mut() {
                    g.name[..name.len()].copy_from_slice(name);
                }
                h.set_cksum();
                b.append(&h, &b"x"[..])
            }
        };
        r.expect("append");
    }
    b.into_inner().expect("tar")
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
    enc.write_all(data).expect("gzip");
    enc.finish().expect("gzip")
}

struct Fixture {
    dir: tempfile::TempDir,
    blobs: BlobStore,
    layers: LayerStore,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let blobs = BlobStore::open(dir.path()).expect("blobs");
    let layers = LayerStore::open(&dir.path().join("layers")).expect("layers");
    Fixture { dir, blobs, layers }
}

impl Fixture {
    fn unpack(&self, blob: &[u8], diff_id: Option<&Digest>) -> Result<PathBuf, UnpackError> {
        let d = self.blobs.put_bytes(blob).expect("put");
        self.layers.ensure(&self.blobs, &d, diff_id)
    }

    fn no_temp_dirs_left(&self) -> bool {
        fs::read_dir(self.dir.path().join("layers"))
            .expect("layers dir")
            .all(|e| {
                !e.expect("entry")
                    .file_name()
                    .as_bytes()
                    .starts_with(b".tmp-")
            })
    }
}

#[test]
fn gzip_and_plain_layers_unpack_with_verified_diff_id() {
    let f = fixture();
    let tar = layer(&[
        E::Dir("bin"),
        E::File("bin/hello", b"hi"),
        E::Symlink("bin/sh", "/bin/hello"),
    ]);
    let diff_id = Digest::of(&tar);
    for blob in [gzip(&tar), tar.clone()] {
        let dir = f.unpack(&blob, Some(&diff_id)).expect("unpack");
        assert_eq!(
            fs::read(dir.join("bin/hello")).ok().as_deref(),
            Some(&b"hi"[..])
        );
        let link = fs::read_link(dir.join("bin/sh")).expect("symlink kept as content");
        assert_eq!(link, Path::new("/bin/hello"));
    }
}

#[test]
fn wrong_diff_id_is_a_corrupt_layer_and_leaves_nothing() {
    let f = fixture();
    let tar = layer(&[E::File("a", b"1")]);
    let wrong = Digest::of(b"something else");
    let err = f.unpack(&gzip(&tar), Some(&wrong));
    assert!(
        matches!(err, Err(UnpackError::DiffIdMismatch { .. })),
        "{err:?}"
    );
    assert!(
        err.map_err(|e| e.to_string())
            .unwrap_err()
            .starts_with("corrupt layer")
    );
    assert!(f.no_temp_dirs_left());
    assert_eq!(f.layers.list().map(|l| l.len()).ok(), Some(0));
}

#[test]
fn truncated_gzip_is_a_corrupt_layer() {
    let f = fixture();
    let blob = gzip(&layer(&[E::File("a", &[7u8; 10000])]));
    let err = f.unpack(&blob[..blob.len() / 2], None);
    assert!(matches!(err, Err(UnpackError::Corrupt { .. })), "{err:?}");
    assert!(f.no_temp_dirs_left());
}

#[test]
fn symlink_escape_is_refused_and_nothing_lands_outside() {
    let f = fixture();
    let outside = f.dir.path().join("outside");
    fs::create_dir(&outside).expect("mkdir");
    let target = outside.to_string_lossy().into_owned();
    let tar = layer(&[E::Symlink("evil", &target), E::File("evil/pwned", b"x")]);
    let err = f.unpack(&tar, None);
    assert!(matches!(err, Err(UnpackError::Escape { .. })), "{err:?}");
    assert!(!outside.join("pwned").exists());
    assert!(f.no_temp_dirs_left());
}

#[test]
fn dot_dot_entries_are_refused() {
    let f = fixture();
    let tar = layer(&[E::RawName(b"../escape")]);
    let err = f.unpack(&tar, None);
    assert!(matches!(err, Err(UnpackError::BadEntry { .. })), "{err:?}");
    assert!(!f.dir.path().join("escape").exists());
}

#[test]
fn whiteouts_become_overlay_whiteouts() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: overlay whiteouts need root (mknod, trusted xattrs)");
        return;
    }
    let f = fixture();
    let tar = layer(&[
        E::Dir("etc"),
        E::File("etc/.wh.hosts", b""),
        E::Dir("var/lib"),
        E::File("var/lib/.wh..wh..opq", b""),
    ]);
    let dir = f.unpack(&tar, None).expect("unpack");
    let meta = fs::symlink_metadata(dir.join("etc/hosts")).expect("whiteout");
    assert!(meta.file_type().is_char_device());
    let mut value = [0u8; 4];
    let path = CString::new(dir.join("var/lib").as_os_str().as_bytes()).expect("cstring");
    // SAFETY: valid NUL-terminated strings and a buffer of the given length.
    let n = unsafe {
        libc::lgetxattr(
            path.as_ptr(),
            c"trusted.overlay.opaque".as_ptr(),
            value.as_mut_ptr().cast(),
            value.len(),
        )
    };
    assert_eq!(n, 1);
    assert_eq!(value[0], b'y');
    assert!(!dir.join("var/lib/.wh..wh..opq").exists());
}
