//! Reading manifests from files, directories (`*.yaml`, `*.yml`, `*.json`,
//! sorted) or standard input.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use drover_proto::manifest::{Manifest, parse_manifests};

/// Every manifest named by `-f` arguments, in order.
pub fn read_manifests(paths: &[String]) -> Result<Vec<Manifest>> {
    let mut out = Vec::new();
    for p in paths {
        if p == "-" {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("cannot read standard input")?;
            out.extend(parse_manifests(&text, "<stdin>")?);
            continue;
        }
        for file in expand(Path::new(p))? {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            out.extend(parse_manifests(&text, &file.display().to_string())?);
        }
    }
    Ok(out)
}

fn expand(path: &Path) -> Result<Vec<PathBuf>> {
    let meta =
        std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    if !meta.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .with_context(|| format!("cannot list {}", path.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && p.extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"))
        })
        .collect();
    files.sort();
    if files.is_empty() {
        bail!("{}: no .yaml, .yml or .json files", path.display());
    }
    Ok(files)
}
