//! Address buses (one for port I/O, one for MMIO) that route guest accesses to devices.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

/// A device reachable over a bus. Offsets are relative to the device's base; `data`
/// length is the access width the guest used (1, 2, 4 or 8), which devices must not trust.
pub trait BusDevice: Send {
    /// Guest read: fill `data`.
    fn read(&mut self, offset: u64, data: &mut [u8]);
    /// Guest write.
    fn write(&mut self, offset: u64, data: &[u8]);
}

/// Shared handle to a device on a bus.
pub type SharedDevice = Arc<Mutex<dyn BusDevice>>;

/// Errors inserting a device.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BusError {
    /// The new range overlaps a registered one.
    #[error("device range {base:#x}+{len:#x} overlaps an existing device")]
    Overlap {
        /// Base of the rejected range.
        base: u64,
        /// Length of the rejected range.
        len: u64,
    },
    /// Zero length or wrapping range.
    #[error("device range {base:#x}+{len:#x} is empty or wraps")]
    BadRange {
        /// Base.
        base: u64,
        /// Length.
        len: u64,
    },
}

/// Non-overlapping ranges keyed by base address.
#[derive(Default, Clone)]
pub struct Bus {
    ranges: BTreeMap<u64, (u64, SharedDevice)>,
}

impl Bus {
    /// Registers `device` at `[base, base + len)`.
    pub fn insert(&mut self, device: SharedDevice, base: u64, len: u64) -> Result<(), BusError> {
        let end = base
            .checked_add(len)
            .filter(|_| len > 0)
            .ok_or(BusError::BadRange { base, len })?;
        let overlaps_prev = self
            .ranges
            .range(..end)
            .next_back()
            .is_some_and(|(b, (l, _))| b + l > base);
        if overlaps_prev {
            return Err(BusError::Overlap { base, len });
        }
        self.ranges.insert(base, (len, device));
        Ok(())
    }

    /// The device covering `addr` (whole access must fit) and the offset into it.
    fn resolve(&self, addr: u64, width: usize) -> Option<(&SharedDevice, u64)> {
        let (base, (len, dev)) = self.ranges.range(..=addr).next_back()?;
        let offset = addr - base;
        let end = offset.checked_add(width as u64)?;
        (end <= *len).then_some((dev, offset))
    }

    /// Dispatches a read; returns false when nothing is mapped there.
    pub fn read(&self, addr: u64, data: &mut [u8]) -> bool {
        match self.resolve(addr, data.len()) {
            Some((dev, offset)) => {
                dev.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .read(offset, data);
                true
            }
            None => false,
        }
    }

    /// Dispatches a write; returns false when nothing is mapped there.
    pub fn write(&self, addr: u64, data: &[u8]) -> bool {
        match self.resolve(addr, data.len()) {
            Some((dev, offset)) => {
                dev.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .write(offset, data);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Recorder {
        last: Option<(u64, Vec<u8>)>,
    }
    impl BusDevice for Recorder {
        fn read(&mut self, offset: u64, data: &mut [u8]) {
            data.fill(offset as u8);
        }
        fn write(&mut self, offset: u64, data: &[u8]) {
            self.last = Some((offset, data.to_vec()));
        }
    }

    #[test]
    fn routes_by_range_and_rejects_overlaps() {
        let mut bus = Bus::default();
        let a = Arc::new(Mutex::new(Recorder::default()));
        bus.insert(a.clone(), 0x100, 0x10).unwrap();
        bus.insert(Arc::new(Mutex::new(Recorder::default())), 0x110, 0x10)
            .unwrap();
        assert_eq!(
            bus.insert(Arc::new(Mutex::new(Recorder::default())), 0x10f, 2),
            Err(BusError::Overlap {
                base: 0x10f,
                len: 2
            })
        );
        assert_eq!(
            bus.insert(Arc::new(Mutex::new(Recorder::default())), 0xf0, 0x11),
            Err(BusError::Overlap {
                base: 0xf0,
                len: 0x11
            })
        );
        assert!(matches!(
            bus.insert(Arc::new(Mutex::new(Recorder::default())), u64::MAX, 2),
            Err(BusError::BadRange { .. })
        ));
        assert!(bus.write(0x104, &[1, 2]));
        assert_eq!(a.lock().unwrap().last, Some((4, vec![1, 2])));
        let mut buf = [0u8; 4];
        assert!(bus.read(0x10c, &mut buf));
        assert_eq!(buf, [0xc; 4]);
        // An access straddling the end of a device goes nowhere.
        assert!(!bus.read(0x11e, &mut buf));
        assert!(!bus.write(0x50, &[0]));
        assert!(!bus.read(u64::MAX, &mut buf));
    }
}
