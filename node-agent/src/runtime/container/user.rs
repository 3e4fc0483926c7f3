//! Resolves an image's `USER` (`name`, `uid`, `name:group`, `uid:gid`)
//! against the image's own /etc/passwd and /etc/group, as runc does inside
//! the container, without starting it.

use std::fs;
use std::path::{Path, PathBuf};

/// The user or group named in `USER` does not exist in the image.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UserError {
    /// No such user in the image's /etc/passwd.
    #[error("user {0:?} not found in the image's /etc/passwd")]
    NoUser(String),
    /// No such group in the image's /etc/group.
    #[error("group {0:?} not found in the image's /etc/group")]
    NoGroup(String),
}

/// Finds `name` in passwd text: its uid and primary gid (pure).
pub fn lookup_passwd(text: &str, name: &str) -> Option<(u32, u32)> {
    text.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        (f.len() >= 4 && f[0] == name).then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))?
    })
}

/// Finds `name` in group text: its gid (pure).
pub fn lookup_group(text: &str, name: &str) -> Option<u32> {
    text.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        (f.len() >= 3 && f[0] == name).then(|| f[2].parse().ok())?
    })
}

/// Resolves `user` given the contents of /etc/passwd and /etc/group (pure).
pub fn resolve(user: &str, passwd: &str, group: &str) -> Result<(u32, u32), UserError> {
    if user.is_empty() {
        return Ok((0, 0));
    }
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let (uid, primary) = match u.parse::<u32>() {
        // A numeric uid need not exist in passwd; when it does, passwd gives its group.
        Ok(uid) => (
            uid,
            passwd
                .lines()
                .find_map(|l| {
                    let f: Vec<&str> = l.split(':').collect();
                    (f.len() >= 4 && f[2] == u).then(|| f[3].parse().ok())?
                })
                .unwrap_or(0),
        ),
        Err(_) => lookup_passwd(passwd, u).ok_or_else(|| UserError::NoUser(u.to_string()))?,
    };
    let gid = match g {
        None | Some("") => primary,
        Some(g) => match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => lookup_group(group, g).ok_or_else(|| UserError::NoGroup(g.to_string()))?,
        },
    };
    Ok((uid, gid))
}

/// Reads `rel` from the topmost layer that has it as a regular file (a
/// whiteout or symlink there hides it: symlinks are never followed on the host).
fn read_from_layers(lowers: &[PathBuf], rel: &Path) -> String {
    for layer in lowers {
        let path = layer.join(rel);
        match fs::symlink_metadata(&path) {
            Ok(m) if m.is_file() => return fs::read_to_string(&path).unwrap_or_default(),
            Ok(_) => return String::new(),
            Err(_) => continue,
        }
    }
    String::new()
}

/// Resolves `user` against the image layers (topmost first).
pub fn resolve_in_layers(lowers: &[PathBuf], user: &str) -> Result<(u32, u32), UserError> {
    // `uid:gid` needs no lookup (and the image may have no /etc at all).
    if let Some((u, g)) = user.split_once(':')
        && let (Ok(uid), Ok(gid)) = (u.parse(), g.parse())
    {
        return Ok((uid, gid));
    }
    let passwd = read_from_layers(lowers, Path::new("etc/passwd"));
    let group = read_from_layers(lowers, Path::new("etc/group"));
    resolve(user, &passwd, &group)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nwww:x:33:34::/var/www:/bin/false\n";
    const GROUP: &str = "root:x:0:\nwww-data:x:34:\nstaff:x:50:\n";

    #[test]
    fn table_of_users() {
        let cases = [
            ("", Ok((0, 0))),
            ("root", Ok((0, 0))),
            ("www", Ok((33, 34))),
            ("www:staff", Ok((33, 50))),
            ("33", Ok((33, 34))),
            ("1000", Ok((1000, 0))),
            ("1000:1000", Ok((1000, 1000))),
            ("www:7", Ok((33, 7))),
            ("nobody", Err(UserError::NoUser("nobody".into()))),
            ("www:wheel", Err(UserError::NoGroup("wheel".into()))),
        ];
        for (user, want) in cases {
            assert_eq!(resolve(user, PASSWD, GROUP), want, "{user}");
        }
    }

    #[test]
    fn reads_the_topmost_layer_and_never_follows_symlinks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (top, base) = (dir.path().join("top"), dir.path().join("base"));
        fs::create_dir_all(top.join("etc")).expect("mkdir");
        fs::create_dir_all(base.join("etc")).expect("mkdir");
        fs::write(base.join("etc/passwd"), "app:x:7:7::/:/bin/sh\n").expect("write");
        fs::write(top.join("etc/passwd"), "app:x:9:9::/:/bin/sh\n").expect("write");
        let lowers = vec![top.clone(), base.clone()];
        assert_eq!(resolve_in_layers(&lowers, "app"), Ok((9, 9)));
        fs::remove_file(top.join("etc/passwd")).expect("rm");
        std::os::unix::fs::symlink("/etc/passwd", top.join("etc/passwd")).expect("symlink");
        assert_eq!(
            resolve_in_layers(&lowers, "app"),
            Err(UserError::NoUser("app".into()))
        );
    }
}
