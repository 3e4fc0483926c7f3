//! Container logs in the CRI format kubelet writes
//! (`<RFC 3339 nanos> <stream> <F|P> <text>`), rotated by size.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Longest line written in one record; longer lines are split into
/// partial (`P`) records, as CRI runtimes do.
pub const MAX_LINE: usize = 16 * 1024;

/// Formats one CRI log record (pure).
pub fn cri_line(timestamp: &str, stream: &str, partial: bool, text: &[u8]) -> Vec<u8> {
    let tag = if partial { "P" } else { "F" };
    let mut out = Vec::with_capacity(text.len() + 48);
    out.extend_from_slice(timestamp.as_bytes());
    out.push(b' ');
    out.extend_from_slice(stream.as_bytes());
    out.push(b' ');
    out.extend_from_slice(tag.as_bytes());
    out.push(b' ');
    out.extend_from_slice(text);
    out.push(b'\n');
    out
}

/// A log file that rotates to `NAME.1`, `NAME.2`, … past a size.
#[derive(Debug)]
pub struct RotatingLog {
    path: PathBuf,
    max_bytes: u64,
    max_files: u32,
    file: File,
    size: u64,
}

impl RotatingLog {
    /// Opens (appending to) the log at `path`.
    pub fn open(path: &Path, max_bytes: u64, max_files: u32) -> io::Result<Self> {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let size = file.metadata()?.len();
        Ok(RotatingLog {
            path: path.to_path_buf(),
            max_bytes,
            max_files: max_files.max(1),
            file,
            size,
        })
    }

    /// Appends one record, rotating first if it would not fit.
    pub fn write_record(&mut self, record: &[u8]) -> io::Result<()> {
        if self.size > 0 && self.size + record.len() as u64 > self.max_bytes {
            self.rotate()?;
        }
        self.file.write_all(record)?;
        self.size += record.len() as u64;
        Ok(())
    }

    fn rotated(&self, n: u32) -> PathBuf {
        let mut name = self.path.as_os_str().to_owned();
        name.push(format!(".{n}"));
        PathBuf::from(name)
    }

    fn rotate(&mut self) -> io::Result<()> {
        if self.max_files == 1 {
            self.file.set_len(0)?;
            self.size = 0;
            return Ok(());
        }
        let _ = fs::remove_file(self.rotated(self.max_files - 1));
        for n in (1..self.max_files - 1).rev() {
            let _ = fs::rename(self.rotated(n), self.rotated(n + 1));
        }
        fs::rename(&self.path, self.rotated(1))?;
        self.file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

/// One log record read back (a partial sequence already joined).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogRecord {
    /// RFC 3339 timestamp of the record (of its last part, if joined).
    pub timestamp: String,
    /// `stdout` or `stderr`.
    pub stream: String,
    /// The line, without its newline.
    pub text: Vec<u8>,
}

/// Parses one CRI record (without its newline); `bool` is "partial" (pure).
pub fn parse_cri_line(line: &[u8]) -> Option<(LogRecord, bool)> {
    let mut parts = line.splitn(4, |&b| b == b' ');
    let timestamp = std::str::from_utf8(parts.next()?).ok()?.to_string();
    let stream = std::str::from_utf8(parts.next()?).ok()?.to_string();
    let partial = match parts.next()? {
        b"P" => true,
        b"F" => false,
        _ => return None,
    };
    let text = parts.next().unwrap_or_default().to_vec();
    Some((
        LogRecord {
            timestamp,
            stream,
            text,
        },
        partial,
    ))
}

/// Reads a container's log back, rotated files oldest first, joining
/// partial records; malformed lines are skipped.
pub fn read_log(path: &Path, max_files: u32) -> io::Result<Vec<LogRecord>> {
    let mut files: Vec<PathBuf> = (1..max_files.max(1))
        .rev()
        .map(|n| {
            let mut name = path.as_os_str().to_owned();
            name.push(format!(".{n}"));
            PathBuf::from(name)
        })
        .collect();
    files.push(path.to_path_buf());
    let mut out = Vec::new();
    let mut pending: Option<LogRecord> = None;
    for file in files {
        let data = match fs::read(&file) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for line in data.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let Some((record, partial)) = parse_cri_line(line) else {
                continue;
            };
            let joined = match pending.take() {
                Some(mut head) if head.stream == record.stream => {
                    head.text.extend_from_slice(&record.text);
                    head.timestamp = record.timestamp;
                    head
                }
                Some(head) => {
                    out.push(head);
                    record
                }
                None => record,
            };
            if partial {
                pending = Some(joined);
            } else {
                out.push(joined);
            }
        }
    }
    out.extend(pending);
    Ok(out)
}

pub(crate) fn timestamp() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// Copies a stream into the log until EOF, one record per line.
pub fn pump(mut from: impl Read, stream: &str, log: &Arc<Mutex<RotatingLog>>) {
    let mut buf = vec![0u8; 32 * 1024];
    let mut pending: Vec<u8> = Vec::new();
    let emit = |text: &[u8], partial: bool| {
        let record = cri_line(&timestamp(), stream, partial, text);
        let mut log = log.lock().unwrap_or_else(|p| p.into_inner());
        // A full disk must not stop the container; the bytes are lost.
        let _ = log.write_record(&record);
    };
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        pending.extend_from_slice(&buf[..n]);
        while let Some(pos) = pending.iter().position(|&b| b == b'\n') {
            emit(&pending[..pos], false);
            pending.drain(..=pos);
        }
        while pending.len() >= MAX_LINE {
            emit(&pending[..MAX_LINE], true);
            pending.drain(..MAX_LINE);
        }
    }
    if !pending.is_empty() {
        emit(&pending, false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_cri_records() {
        let line = cri_line("2024-01-01T00:00:00.000000001Z", "stdout", false, b"hello");
        assert_eq!(line, b"2024-01-01T00:00:00.000000001Z stdout F hello\n");
        let line = cri_line("t", "stderr", true, b"part");
        assert_eq!(line, b"t stderr P part\n");
    }

    #[test]
    fn pumps_lines_and_splits_long_ones() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.log");
        let log = Arc::new(Mutex::new(
            RotatingLog::open(&path, 1 << 20, 2).expect("open"),
        ));
        let long = vec![b'x'; MAX_LINE + 10];
        let mut input = b"one\ntwo\n".to_vec();
        input.extend_from_slice(&long);
        pump(&input[..], "stdout", &log);
        let text = fs::read_to_string(&path).expect("read");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(lines[0].ends_with(" stdout F one"));
        assert!(lines[2].contains(" stdout P xxx"));
        assert!(lines[3].ends_with(" stdout F xxxxxxxxxx"));
    }

    #[test]
    fn reads_back_across_rotation_joining_partials() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.log");
        let log = Arc::new(Mutex::new(RotatingLog::open(&path, 200, 3).expect("open")));
        let long = vec![b'y'; MAX_LINE + 3];
        let mut input = b"first\n".to_vec();
        input.extend_from_slice(&long);
        input.extend_from_slice(b"\nlast\n");
        pump(&input[..], "stdout", &log);
        let records = read_log(&path, 3).expect("read");
        let texts: Vec<usize> = records.iter().map(|r| r.text.len()).collect();
        assert_eq!(texts, [5, MAX_LINE + 3, 4]);
        assert_eq!(records[2].text, b"last");
        assert!(parse_cri_line(b"garbage").is_none());
    }

    #[test]
    fn rotates_by_size_keeping_max_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.log");
        let mut log = RotatingLog::open(&path, 100, 3).expect("open");
        for i in 0..20 {
            log.write_record(format!("record {i:02} {}\n", "-".repeat(30)).as_bytes())
                .expect("write");
        }
        let mut names: Vec<String> = fs::read_dir(dir.path())
            .expect("dir")
            .map(|e| e.expect("e").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["c.log", "c.log.1", "c.log.2"]);
        assert!(
            fs::read_to_string(&path)
                .expect("live")
                .contains("record 19")
        );
        assert!(fs::metadata(&path).expect("meta").len() <= 100);
    }
}
