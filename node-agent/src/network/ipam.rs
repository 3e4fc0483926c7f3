//! Pod addresses from the node's CIDR, persisted as one file per address
//! (named by the address, holding the pod's uid), as CNI's host-local IPAM
//! does: an agent restart reuses nothing in use, and a pod keeps its address.

use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use super::cidr::Cidr;

/// The address allocator of one node.
#[derive(Debug, Clone)]
pub struct Ipam {
    dir: PathBuf,
    cidr: Cidr,
}

#[derive(Debug, thiserror::Error)]
pub enum IpamError {
    #[error("no free address left in {0}")]
    Exhausted(Cidr),
    #[error("address store {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl Ipam {
    pub fn open(dir: &Path, cidr: Cidr) -> Result<Ipam, IpamError> {
        std::fs::create_dir_all(dir).map_err(|source| IpamError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        Ok(Ipam {
            dir: dir.to_path_buf(),
            cidr,
        })
    }

    /// The address `owner` holds, if any.
    pub fn lookup(&self, owner: &str) -> Option<Ipv4Addr> {
        self.entries()
            .into_iter()
            .find(|(_, o)| o == owner)
            .map(|(ip, _)| ip)
    }

    /// The address of `owner`: the one it has, or the lowest free one.
    pub fn allocate(&self, owner: &str) -> Result<Ipv4Addr, IpamError> {
        if let Some(ip) = self.lookup(owner) {
            return Ok(ip);
        }
        for ip in self.cidr.pod_addresses() {
            let path = self.dir.join(ip.to_string());
            // create_new: two allocations can never get the same address.
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut f) => {
                    f.write_all(owner.as_bytes())
                        .and_then(|_| f.sync_all())
                        .map_err(|source| IpamError::Io {
                            path: path.clone(),
                            source,
                        })?;
                    return Ok(ip);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(source) => return Err(IpamError::Io { path, source }),
            }
        }
        Err(IpamError::Exhausted(self.cidr))
    }

    /// Frees whatever `owner` holds.
    pub fn release(&self, owner: &str) {
        for (ip, o) in self.entries() {
            if o == owner {
                let _ = std::fs::remove_file(self.dir.join(ip.to_string()));
            }
        }
    }

    /// Every allocation: address → owner (unreadable entries are skipped).
    pub fn entries(&self) -> Vec<(Ipv4Addr, String)> {
        let Ok(dir) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        dir.flatten()
            .filter_map(|e| {
                let ip: Ipv4Addr = e.file_name().to_str()?.parse().ok()?;
                let owner = std::fs::read_to_string(e.path()).ok()?;
                Some((ip, owner))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocates_lowest_free_keeps_and_releases() {
        let dir = tempfile::tempdir().unwrap();
        let cidr = Cidr::parse("10.9.0.0/28").unwrap();
        let ipam = Ipam::open(dir.path(), cidr).unwrap();
        let a = ipam.allocate("pod-a").unwrap();
        let b = ipam.allocate("pod-b").unwrap();
        assert_eq!(a, Ipv4Addr::new(10, 9, 0, 2));
        assert_eq!(b, Ipv4Addr::new(10, 9, 0, 3));
        assert_eq!(
            ipam.allocate("pod-a").unwrap(),
            a,
            "a pod keeps its address"
        );
        // A new allocator on the same directory (agent restart) agrees.
        let again = Ipam::open(dir.path(), cidr).unwrap();
        assert_eq!(again.lookup("pod-b"), Some(b));
        assert_eq!(again.allocate("pod-c").unwrap(), Ipv4Addr::new(10, 9, 0, 4));
        again.release("pod-a");
        assert_eq!(
            again.allocate("pod-d").unwrap(),
            a,
            "a released address is reused"
        );
    }

    #[test]
    fn a_full_range_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let ipam = Ipam::open(dir.path(), Cidr::parse("10.9.0.0/28").unwrap()).unwrap();
        for i in 0..13 {
            ipam.allocate(&format!("p{i}")).unwrap();
        }
        assert!(matches!(
            ipam.allocate("one-more"),
            Err(IpamError::Exhausted(_))
        ));
    }
}
