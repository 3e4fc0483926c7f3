//! The initramfs a VM pod boots: the image's layers merged into one tree
//! (overlayfs whiteouts and opaque directories applied, as the container
//! runtime's overlay mount would show them), `drover-init` as `/init`, the
//! kernel's virtio modules, and per run a small second archive holding the
//! pod's `/drover/config` (the kernel unpacks concatenated archives in
//! order, so the cached base is never rewritten per pod).

pub mod cpio;

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use cpio::{CpioWriter, Owner};
use drover_init::config::{CONFIG_PATH, GuestConfig, MODULES_DIR, MODULES_ORDER};
use sha2::{Digest, Sha256};

/// Building an initramfs failed.
#[derive(Debug, thiserror::Error)]
pub enum InitramfsError {
    /// Reading the image's files or writing the archive failed.
    #[error("building the initramfs: {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> InitramfsError + '_ {
    move |source| InitramfsError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What goes into the base archive.
#[derive(Clone, Copy, Debug)]
pub struct BaseInputs<'a> {
    /// The image's unpacked layers, topmost first.
    pub lowers: &'a [PathBuf],
    /// The `drover-init` executable.
    pub init: &'a [u8],
    /// Kernel modules to load, in dependency order.
    pub modules: &'a [PathBuf],
}

/// The cache key of a base archive: the image, init and the modules.
pub fn base_key(image_manifest: &str, inputs: &BaseInputs<'_>) -> String {
    let mut h = Sha256::new();
    h.update(image_manifest.as_bytes());
    h.update(Sha256::digest(inputs.init));
    for m in inputs.modules {
        h.update(m.as_os_str().as_encoded_bytes());
        h.update(
            fs::metadata(m)
                .map(|md| md.len())
                .unwrap_or(0)
                .to_le_bytes(),
        );
    }
    hex::encode(&h.finalize()[..16])
}

fn is_whiteout(md: &fs::Metadata) -> bool {
    md.file_type().is_char_device() && md.rdev() == 0
}

fn is_opaque(dir: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(path) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    let mut value = [0u8; 1];
    // SAFETY: valid C strings and a buffer of the length passed.
    let n = unsafe {
        libc::lgetxattr(
            path.as_ptr(),
            c"trusted.overlay.opaque".as_ptr(),
            value.as_mut_ptr().cast(),
            value.len(),
        )
    };
    n == 1 && value[0] == b'y'
}

fn remove_below(tree: &mut BTreeMap<PathBuf, PathBuf>, rel: &Path, keep_self: bool) {
    tree.retain(|k, _| !(k.starts_with(rel) && !(keep_self && k == rel)));
}

/// The merged tree: path inside the image → the file providing it.
pub fn merge_layers(lowers: &[PathBuf]) -> Result<BTreeMap<PathBuf, PathBuf>, InitramfsError> {
    let mut tree = BTreeMap::new();
    for layer in lowers.iter().rev() {
        let mut stack = vec![PathBuf::new()];
        while let Some(rel) = stack.pop() {
            let dir = layer.join(&rel);
            let mut entries: Vec<_> = fs::read_dir(&dir)
                .map_err(io_err(&dir))?
                .collect::<Result<_, _>>()
                .map_err(io_err(&dir))?;
            entries.sort_by_key(|e| e.file_name());
            for e in entries {
                let path = e.path();
                let md = fs::symlink_metadata(&path).map_err(io_err(&path))?;
                let name = rel.join(e.file_name());
                if is_whiteout(&md) {
                    remove_below(&mut tree, &name, false);
                    continue;
                }
                if md.is_dir() {
                    if is_opaque(&path) {
                        remove_below(&mut tree, &name, true);
                    } else if tree
                        .get(&name)
                        .is_some_and(|p| fs::symlink_metadata(p).is_ok_and(|m| !m.is_dir()))
                    {
                        remove_below(&mut tree, &name, false);
                    }
                    stack.push(name.clone());
                } else {
                    // A file replacing a directory hides what was below it.
                    remove_below(&mut tree, &name, false);
                }
                tree.insert(name, path);
            }
        }
    }
    Ok(tree)
}

fn write_tree<W: Write>(
    w: &mut CpioWriter<W>,
    tree: &BTreeMap<PathBuf, PathBuf>,
) -> Result<(), InitramfsError> {
    for (rel, src) in tree {
        let name = rel.to_string_lossy();
        if name == "init" {
            continue; // ours wins
        }
        let md = fs::symlink_metadata(src).map_err(io_err(src))?;
        let owner = Owner {
            uid: md.uid(),
            gid: md.gid(),
        };
        let ft = md.file_type();
        let r = if ft.is_dir() {
            w.dir(&name, md.mode(), owner)
        } else if ft.is_symlink() {
            let target = fs::read_link(src).map_err(io_err(src))?;
            w.symlink(&name, &target.to_string_lossy(), owner)
        } else if ft.is_file() {
            let mut f = File::open(src).map_err(io_err(src))?;
            w.file(&name, md.mode(), owner, md.len(), &mut f)
        } else {
            continue; // devices, fifos, sockets: devtmpfs provides devices
        };
        r.map_err(io_err(src))?;
    }
    Ok(())
}

/// Writes the base archive to `out`.
pub fn write_base(inputs: &BaseInputs<'_>, out: impl Write) -> Result<(), InitramfsError> {
    let here = Path::new("initramfs");
    let mut w = CpioWriter::new(out);
    let tree = merge_layers(inputs.lowers)?;
    write_tree(&mut w, &tree)?;
    let mut order = String::new();
    let mut ours = || -> io::Result<()> {
        for d in ["dev", "proc", "sys", "drover", MODULES_DIR] {
            let d = d.trim_start_matches('/');
            if !tree.contains_key(Path::new(d)) {
                w.dir(d, 0o755, Owner::default())?;
            }
        }
        if !tree.contains_key(Path::new("dev/console")) {
            w.char_device("dev/console", 0o600, 5, 1)?;
        }
        w.bytes("init", 0o755, inputs.init)?;
        Ok(())
    };
    ours().map_err(io_err(here))?;
    for m in inputs.modules {
        let name = m
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let data = fs::read(m).map_err(io_err(m))?;
        w.bytes(&format!("{MODULES_DIR}/{name}"), 0o644, &data)
            .map_err(io_err(m))?;
        order.push_str(&name);
        order.push('\n');
    }
    w.bytes(MODULES_ORDER, 0o644, order.as_bytes())
        .map_err(io_err(here))?;
    w.finish().map_err(io_err(here))?;
    Ok(())
}

/// The cached base archive for `key` under `cache_dir`, built if missing
/// (written to a temporary file and renamed, so a crash leaves no half).
pub fn ensure_base(
    cache_dir: &Path,
    key: &str,
    inputs: &BaseInputs<'_>,
) -> Result<PathBuf, InitramfsError> {
    let path = cache_dir.join(format!("{key}.cpio"));
    if path.exists() {
        return Ok(path);
    }
    fs::create_dir_all(cache_dir).map_err(io_err(cache_dir))?;
    let tmp = cache_dir.join(format!("{key}.cpio.{}.tmp", std::process::id()));
    let built = (|| {
        let f = File::create(&tmp).map_err(io_err(&tmp))?;
        let mut out = BufWriter::new(f);
        write_base(inputs, &mut out)?;
        out.into_inner()
            .map_err(|e| e.into_error())
            .and_then(|f| f.sync_all())
            .map_err(io_err(&tmp))?;
        fs::rename(&tmp, &path).map_err(io_err(&path))
    })();
    if built.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    built.map(|()| path)
}

/// The per-run archive: just `/drover/config`.
pub fn config_archive(cfg: &GuestConfig) -> io::Result<Vec<u8>> {
    let mut w = CpioWriter::new(Vec::new());
    w.bytes(CONFIG_PATH, 0o644, cfg.render().as_bytes())?;
    w.finish()
}

/// Writes `dest` = the base archive followed by the run's config archive.
pub fn assemble(base: &Path, cfg: &GuestConfig, dest: &Path) -> Result<(), InitramfsError> {
    let mut out = File::create(dest).map_err(io_err(dest))?;
    let mut src = File::open(base).map_err(io_err(base))?;
    io::copy(&mut src, &mut out).map_err(io_err(dest))?;
    let tail = config_archive(cfg).map_err(io_err(dest))?;
    out.write_all(&tail).map_err(io_err(dest))
}

#[cfg(test)]
mod tests;
