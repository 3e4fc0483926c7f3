//! A small, bounds-checked binary codec for VM state, with a checksummed file envelope
//! so a truncated or corrupted snapshot is rejected instead of restored.

use kvm_bindings::{
    kvm_clock_data, kvm_debugregs, kvm_fpu, kvm_irqchip, kvm_lapic_state, kvm_mp_state,
    kvm_pit_state2, kvm_regs, kvm_sregs, kvm_vcpu_events, kvm_xcrs,
};

const MAGIC: &[u8; 8] = b"DROVSNAP";
const VERSION: u32 = 1;

/// Errors decoding state.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CodecError {
    /// Not a snapshot file.
    #[error("not a drover snapshot (bad magic)")]
    Magic,
    /// Written by an incompatible monitor.
    #[error("snapshot version {0} is not supported (expected {VERSION})")]
    Version(u32),
    /// Checksum mismatch.
    #[error("snapshot is corrupt (checksum mismatch)")]
    Checksum,
    /// Ran out of bytes.
    #[error("snapshot is truncated")]
    Truncated,
    /// A value that cannot be right.
    #[error("snapshot field {0} is invalid")]
    Invalid(&'static str),
}

/// Plain-old-data KVM structures: every bit pattern is a valid value.
///
/// # Safety
/// Implementors must be `repr(C)` structs of integers, integer arrays and unions of
/// those, with no padding-dependent invariants, pointers or references.
pub unsafe trait Pod: Copy + Default {}

// SAFETY: these kvm-bindings types are bindgen repr(C) structs/unions of integers only.
unsafe impl Pod for kvm_regs {}
// SAFETY: as above.
unsafe impl Pod for kvm_sregs {}
// SAFETY: as above.
unsafe impl Pod for kvm_fpu {}
// SAFETY: as above.
unsafe impl Pod for kvm_lapic_state {}
// SAFETY: as above.
unsafe impl Pod for kvm_mp_state {}
// SAFETY: as above.
unsafe impl Pod for kvm_vcpu_events {}
// SAFETY: as above.
unsafe impl Pod for kvm_xcrs {}
// SAFETY: as above.
unsafe impl Pod for kvm_debugregs {}
// SAFETY: as above.
unsafe impl Pod for kvm_irqchip {}
// SAFETY: as above.
unsafe impl Pod for kvm_pit_state2 {}
// SAFETY: as above.
unsafe impl Pod for kvm_clock_data {}

/// Appends values to a byte buffer.
#[derive(Default)]
pub struct StateWriter {
    buf: Vec<u8>,
}

impl StateWriter {
    /// One byte.
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    /// Little-endian u16.
    pub fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    /// Little-endian u32.
    pub fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    /// Little-endian u64.
    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    /// Length-prefixed bytes.
    pub fn bytes(&mut self, v: &[u8]) {
        self.u64(v.len() as u64);
        self.buf.extend_from_slice(v);
    }
    /// A KVM structure's raw bytes.
    pub fn pod<T: Pod>(&mut self, v: &T) {
        // SAFETY: T is Pod (plain integers), so viewing it as initialised bytes is sound.
        let bytes =
            unsafe { std::slice::from_raw_parts((v as *const T).cast::<u8>(), size_of::<T>()) };
        self.bytes(bytes);
    }

    /// Wraps the payload in the file envelope: magic, version, length, checksum.
    pub fn finish(self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.buf.len() + 24);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&(self.buf.len() as u64).to_le_bytes());
        out.extend_from_slice(&fnv1a(&self.buf).to_le_bytes());
        out.extend_from_slice(&self.buf);
        out
    }
}

/// Reads values back, failing on truncation instead of panicking.
pub struct StateReader<'a> {
    buf: &'a [u8],
}

impl<'a> StateReader<'a> {
    /// Checks the envelope and returns a reader over the payload.
    pub fn open(file: &'a [u8]) -> Result<Self, CodecError> {
        let head = file.get(..24).ok_or(CodecError::Truncated)?;
        if &head[..8] != MAGIC {
            return Err(CodecError::Magic);
        }
        let version = u32::from_le_bytes([head[8], head[9], head[10], head[11]]);
        if version != VERSION {
            return Err(CodecError::Version(version));
        }
        let mut len = [0u8; 8];
        len.copy_from_slice(&head[12..20]);
        let len = usize::try_from(u64::from_le_bytes(len)).map_err(|_| CodecError::Truncated)?;
        let sum = u32::from_le_bytes([head[20], head[21], head[22], head[23]]);
        let payload = file.get(24..).ok_or(CodecError::Truncated)?;
        if payload.len() != len {
            return Err(CodecError::Truncated);
        }
        if fnv1a(payload) != sum {
            return Err(CodecError::Checksum);
        }
        Ok(StateReader { buf: payload })
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        if self.buf.len() < n {
            return Err(CodecError::Truncated);
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    /// One byte.
    pub fn u8(&mut self) -> Result<u8, CodecError> {
        Ok(self.take(1)?[0])
    }
    /// Little-endian u16.
    pub fn u16(&mut self) -> Result<u16, CodecError> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    /// Little-endian u32.
    pub fn u32(&mut self) -> Result<u32, CodecError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    /// Little-endian u64.
    pub fn u64(&mut self) -> Result<u64, CodecError> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(a))
    }
    /// Length-prefixed bytes.
    pub fn bytes(&mut self) -> Result<&'a [u8], CodecError> {
        let len = usize::try_from(self.u64()?).map_err(|_| CodecError::Truncated)?;
        self.take(len)
    }
    /// A KVM structure written by `StateWriter::pod`.
    pub fn pod<T: Pod>(&mut self) -> Result<T, CodecError> {
        let bytes = self.bytes()?;
        if bytes.len() != size_of::<T>() {
            return Err(CodecError::Invalid("kvm structure size"));
        }
        let mut value = T::default();
        // SAFETY: T is Pod so any bytes form a valid value; lengths are equal (checked above).
        unsafe {
            std::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                (&mut value as *mut T).cast::<u8>(),
                bytes.len(),
            );
        }
        Ok(value)
    }
    /// True when every byte was consumed.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
}

/// FNV-1a: cheap and enough to catch truncation and bit rot (not an integrity MAC).
fn fnv1a(data: &[u8]) -> u32 {
    data.iter().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_corruption_detection() {
        let mut w = StateWriter::default();
        w.u8(7);
        w.u16(0x1234);
        w.u32(0xdead_beef);
        w.u64(u64::MAX);
        w.bytes(b"abc");
        let regs = kvm_regs {
            rip: 0x1000,
            rax: 42,
            ..Default::default()
        };
        w.pod(&regs);
        let file = w.finish();

        let mut r = StateReader::open(&file).unwrap();
        assert_eq!(r.u8().unwrap(), 7);
        assert_eq!(r.u16().unwrap(), 0x1234);
        assert_eq!(r.u32().unwrap(), 0xdead_beef);
        assert_eq!(r.u64().unwrap(), u64::MAX);
        assert_eq!(r.bytes().unwrap(), b"abc");
        let back: kvm_regs = r.pod().unwrap();
        assert_eq!((back.rip, back.rax), (0x1000, 42));
        assert!(r.is_empty());
        assert_eq!(r.u8(), Err(CodecError::Truncated));

        let mut flipped = file.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert_eq!(
            StateReader::open(&flipped).err(),
            Some(CodecError::Checksum)
        );
        assert_eq!(
            StateReader::open(&file[..file.len() - 1]).err(),
            Some(CodecError::Truncated)
        );
        assert_eq!(
            StateReader::open(b"garbage").err(),
            Some(CodecError::Truncated)
        );
        let mut bad_magic = file.clone();
        bad_magic[0] = b'X';
        assert_eq!(StateReader::open(&bad_magic).err(), Some(CodecError::Magic));
    }

    #[test]
    fn pod_size_mismatch_is_an_error_not_ub() {
        let mut w = StateWriter::default();
        w.bytes(&[1, 2, 3]);
        let file = w.finish();
        let mut r = StateReader::open(&file).unwrap();
        assert!(matches!(r.pod::<kvm_regs>(), Err(CodecError::Invalid(_))));
    }
}
