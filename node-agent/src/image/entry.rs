//! Pure rules for layer tar entries: path sanitising and OCI whiteouts.

use std::path::{Component, Path, PathBuf};

/// Prefix of an OCI whiteout file: `.wh.NAME` deletes NAME from lower layers.
pub const WHITEOUT_PREFIX: &str = ".wh.";
/// An opaque-directory marker: the directory hides everything below it.
pub const OPAQUE_MARKER: &str = ".wh..wh..opq";

/// What a layer entry means once its path is understood.
#[derive(Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular entry to create at this relative path.
    Normal(PathBuf),
    /// Delete this relative path from the layers below.
    Whiteout(PathBuf),
    /// Hide the lower layers' contents of this relative directory.
    Opaque(PathBuf),
}

/// Why an entry path is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EntryPathError {
    /// `..` could climb out of the layer.
    #[error("entry {0:?} climbs out of the layer with '..'")]
    ParentDir(String),
    /// Only plain names are allowed in entry paths.
    #[error("entry {0:?} has an unusable path")]
    Unusable(String),
    /// A whiteout whose name is empty or itself special.
    #[error("entry {0:?} is a malformed whiteout")]
    BadWhiteout(String),
}

/// Turns a tar entry path into a path relative to the layer root.
///
/// Leading `/` and `./` are dropped (tar writers differ), `..` is refused
/// outright rather than resolved: a layer has no business naming it. Returns
/// `None` for the root itself.
pub fn sanitize(raw: &Path) -> Result<Option<PathBuf>, EntryPathError> {
    let mut out = PathBuf::new();
    for component in raw.components() {
        match component {
            Component::Normal(name) => out.push(name),
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir => {
                return Err(EntryPathError::ParentDir(raw.display().to_string()));
            }
            Component::Prefix(_) => {
                return Err(EntryPathError::Unusable(raw.display().to_string()));
            }
        }
    }
    Ok((!out.as_os_str().is_empty()).then_some(out))
}

/// Classifies a sanitised relative path as a normal entry, whiteout or opaque marker.
pub fn classify(rel: PathBuf) -> Result<EntryKind, EntryPathError> {
    let Some(name) = rel.file_name().and_then(|n| n.to_str()) else {
        return Ok(EntryKind::Normal(rel));
    };
    let parent = rel.parent().map(Path::to_path_buf).unwrap_or_default();
    if name == OPAQUE_MARKER {
        return Ok(EntryKind::Opaque(parent));
    }
    if let Some(target) = name.strip_prefix(WHITEOUT_PREFIX) {
        if target.is_empty() || target == "." || target == ".." || target.starts_with(".wh.") {
            return Err(EntryPathError::BadWhiteout(rel.display().to_string()));
        }
        return Ok(EntryKind::Whiteout(parent.join(target)));
    }
    Ok(EntryKind::Normal(rel))
}

/// Resolves a hard-link target named inside a layer to a path relative to
/// the layer root, with the same rules as entry paths.
pub fn sanitize_link_target(raw: &Path) -> Result<PathBuf, EntryPathError> {
    sanitize(raw)?.ok_or_else(|| EntryPathError::Unusable(raw.display().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(p: &str) -> Result<Option<EntryKind>, EntryPathError> {
        sanitize(Path::new(p))?.map(classify).transpose()
    }

    #[test]
    fn table_of_entry_paths() {
        let n = |p: &str| Ok(Some(EntryKind::Normal(PathBuf::from(p))));
        let cases: Vec<(&str, Result<Option<EntryKind>, EntryPathError>)> = vec![
            ("./bin/sh", n("bin/sh")),
            ("/etc/passwd", n("etc/passwd")),
            ("bin//busybox", n("bin/busybox")),
            ("./", Ok(None)),
            (".", Ok(None)),
            (
                "etc/.wh.hosts",
                Ok(Some(EntryKind::Whiteout(PathBuf::from("etc/hosts")))),
            ),
            (
                ".wh.tmp",
                Ok(Some(EntryKind::Whiteout(PathBuf::from("tmp")))),
            ),
            (
                "var/lib/.wh..wh..opq",
                Ok(Some(EntryKind::Opaque(PathBuf::from("var/lib")))),
            ),
            (
                "../etc/passwd",
                Err(EntryPathError::ParentDir("../etc/passwd".into())),
            ),
            (
                "a/../../b",
                Err(EntryPathError::ParentDir("a/../../b".into())),
            ),
            (
                "etc/.wh.",
                Err(EntryPathError::BadWhiteout("etc/.wh.".into())),
            ),
            (
                "etc/.wh...",
                Err(EntryPathError::BadWhiteout("etc/.wh...".into())),
            ),
        ];
        for (input, want) in cases {
            assert_eq!(kind(input), want, "{input}");
        }
    }

    #[test]
    fn link_targets_follow_the_same_rules() {
        assert_eq!(
            sanitize_link_target(Path::new("/bin/busybox")),
            Ok(PathBuf::from("bin/busybox"))
        );
        assert!(sanitize_link_target(Path::new("../../x")).is_err());
        assert!(sanitize_link_target(Path::new("/")).is_err());
    }
}
