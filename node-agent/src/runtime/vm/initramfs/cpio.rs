//! A writer of cpio "newc" archives, the format the Linux kernel unpacks
//! as an initramfs (`Documentation/driver-api/early-userspace/buffer-format.rst`):
//! a 110-byte ASCII header per entry, the NUL-terminated name, the data,
//! each padded to 4 bytes, and a `TRAILER!!!` entry at the end.

use std::io::{self, Read, Write};

const MAGIC: &[u8] = b"070701";
const TRAILER: &str = "TRAILER!!!";
/// File type bits of `st_mode`.
pub const S_IFDIR: u32 = 0o040000;
pub const S_IFREG: u32 = 0o100000;
pub const S_IFLNK: u32 = 0o120000;
pub const S_IFCHR: u32 = 0o020000;

/// Owner of an entry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
}

/// Streams entries into `W`.
#[derive(Debug)]
pub struct CpioWriter<W: Write> {
    out: W,
    written: u64,
    next_ino: u32,
}

fn pad(len: u64) -> usize {
    ((4 - len % 4) % 4) as usize
}

impl<W: Write> CpioWriter<W> {
    pub fn new(out: W) -> Self {
        CpioWriter {
            out,
            written: 0,
            next_ino: 1,
        }
    }

    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    fn align(&mut self) -> io::Result<()> {
        let n = pad(self.written);
        self.put(&[0u8; 3][..n])
    }

    fn header(
        &mut self,
        name: &str,
        mode: u32,
        owner: Owner,
        size: u64,
        rdev: (u32, u32),
    ) -> io::Result<()> {
        let name = name.trim_start_matches('/');
        if name.is_empty() || name.contains('\0') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("bad cpio entry name {name:?}"),
            ));
        }
        let size = u32::try_from(size).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{name}: larger than 4 GiB, too big for an initramfs"),
            )
        })?;
        let ino = self.next_ino;
        self.next_ino += 1;
        let nlink = if mode & S_IFDIR != 0 { 2 } else { 1 };
        let namesize = name.len() as u32 + 1;
        let fields = [
            ino, mode, owner.uid, owner.gid, nlink, 0, size, 0, 0, rdev.0, rdev.1, namesize, 0,
        ];
        let mut h = Vec::with_capacity(110 + name.len() + 4);
        h.extend_from_slice(MAGIC);
        for f in fields {
            h.extend_from_slice(format!("{f:08X}").as_bytes());
        }
        h.extend_from_slice(name.as_bytes());
        h.push(0);
        self.put(&h)?;
        self.align()
    }

    /// A directory (`mode` holds the permission bits).
    pub fn dir(&mut self, name: &str, mode: u32, owner: Owner) -> io::Result<()> {
        self.header(name, S_IFDIR | (mode & 0o7777), owner, 0, (0, 0))
    }

    /// A regular file of `size` bytes read from `data`.
    pub fn file(
        &mut self,
        name: &str,
        mode: u32,
        owner: Owner,
        size: u64,
        data: &mut dyn Read,
    ) -> io::Result<()> {
        self.header(name, S_IFREG | (mode & 0o7777), owner, size, (0, 0))?;
        let copied = io::copy(&mut data.take(size), &mut self.out)?;
        self.written += copied;
        if copied != size {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{name}: shrank while being archived"),
            ));
        }
        self.align()
    }

    /// A regular file with the given contents.
    pub fn bytes(&mut self, name: &str, mode: u32, data: &[u8]) -> io::Result<()> {
        let mut r = data;
        self.file(name, mode, Owner::default(), data.len() as u64, &mut r)
    }

    /// A symbolic link to `target`.
    pub fn symlink(&mut self, name: &str, target: &str, owner: Owner) -> io::Result<()> {
        self.header(name, S_IFLNK | 0o777, owner, target.len() as u64, (0, 0))?;
        self.put(target.as_bytes())?;
        self.align()
    }

    /// A character device.
    pub fn char_device(&mut self, name: &str, mode: u32, major: u32, minor: u32) -> io::Result<()> {
        self.header(
            name,
            S_IFCHR | (mode & 0o7777),
            Owner::default(),
            0,
            (major, minor),
        )
    }

    /// Writes the trailer and returns the sink.
    pub fn finish(mut self) -> io::Result<W> {
        self.header(TRAILER, 0, Owner::default(), 0, (0, 0))?;
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads back (name, mode, data) triples: an independent parser of
    /// the format, as the kernel reads it.
    /// Name, mode, data, rdev.
    type Entry = (String, u32, Vec<u8>, (u32, u32));

    fn parse(mut a: &[u8]) -> Vec<Entry> {
        let start = a.len();
        let mut out = vec![];
        loop {
            assert_eq!(&a[..6], MAGIC);
            let field = |i: usize| {
                u32::from_str_radix(std::str::from_utf8(&a[6 + i * 8..14 + i * 8]).unwrap(), 16)
                    .unwrap()
            };
            let (mode, size, rdev, namesize) = (
                field(1),
                field(6) as usize,
                (field(9), field(10)),
                field(11) as usize,
            );
            let name = std::str::from_utf8(&a[110..110 + namesize - 1])
                .unwrap()
                .to_string();
            assert_eq!(a[110 + namesize - 1], 0);
            let mut off = 110 + namesize;
            off += pad((start - a.len() + off) as u64);
            let data = a[off..off + size].to_vec();
            off += size;
            off += pad((start - a.len() + off) as u64);
            a = &a[off..];
            if name == TRAILER {
                assert!(a.is_empty());
                return out;
            }
            out.push((name, mode, data, rdev));
        }
    }

    #[test]
    fn writes_what_the_kernel_reads() {
        let mut w = CpioWriter::new(Vec::new());
        w.dir("/bin", 0o755, Owner::default()).unwrap();
        w.bytes("bin/a", 0o755, b"12345").unwrap();
        w.symlink("bin/sh", "a", Owner { uid: 1, gid: 2 }).unwrap();
        w.char_device("dev/console", 0o600, 5, 1).unwrap();
        w.bytes("empty", 0o644, b"").unwrap();
        let a = w.finish().unwrap();
        assert_eq!(a.len() % 4, 0);
        let entries = parse(&a);
        let names: Vec<_> = entries.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(names, ["bin", "bin/a", "bin/sh", "dev/console", "empty"]);
        assert_eq!(entries[0].1, S_IFDIR | 0o755);
        assert_eq!(entries[1].2, b"12345");
        assert_eq!(
            (entries[2].1, entries[2].2.as_slice()),
            (S_IFLNK | 0o777, &b"a"[..])
        );
        assert_eq!(entries[3].3, (5, 1));
    }

    #[test]
    fn rejects_bad_names_and_short_reads() {
        let mut w = CpioWriter::new(Vec::new());
        assert!(w.bytes("/", 0o644, b"").is_err());
        assert!(w.bytes("a\0b", 0o644, b"").is_err());
        let mut short: &[u8] = b"abc";
        assert!(
            w.file("f", 0o644, Owner::default(), 10, &mut short)
                .is_err()
        );
    }
}
