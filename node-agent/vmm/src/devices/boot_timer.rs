//! Boot timer: the guest's init writes `BOOT_DONE_MAGIC` to the first byte of this MMIO
//! page when it starts, and the monitor records how long that took since VM creation.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::bus::BusDevice;

/// The value init writes (Firecracker's convention, so existing guest inits work).
pub const BOOT_DONE_MAGIC: u8 = 123;

/// Shared record of the boot time, readable while the VM runs.
#[derive(Debug, Clone, Default)]
pub struct BootTime(Arc<Mutex<Option<Duration>>>);

impl BootTime {
    /// Time from VM creation to the guest's signal, once signalled.
    pub fn get(&self) -> Option<Duration> {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The device.
pub struct BootTimer {
    start: Instant,
    recorded: BootTime,
}

impl BootTimer {
    /// Starts counting at `start`.
    pub fn new(start: Instant) -> (Self, BootTime) {
        let recorded = BootTime::default();
        (
            BootTimer {
                start,
                recorded: recorded.clone(),
            },
            recorded,
        )
    }
}

impl BusDevice for BootTimer {
    fn read(&mut self, _offset: u64, data: &mut [u8]) {
        data.fill(0);
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        if offset == 0 && data.first() == Some(&BOOT_DONE_MAGIC) {
            let mut slot = self
                .recorded
                .0
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            // Keep the first signal: a later write (init restarting) must not move it.
            slot.get_or_insert(self.start.elapsed());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_first_magic_write_only() {
        let (mut dev, time) = BootTimer::new(Instant::now());
        dev.write(1, &[BOOT_DONE_MAGIC]);
        dev.write(0, &[7]);
        assert_eq!(time.get(), None);
        dev.write(0, &[BOOT_DONE_MAGIC]);
        let first = time.get().unwrap();
        std::thread::sleep(Duration::from_millis(2));
        dev.write(0, &[BOOT_DONE_MAGIC, 0, 0, 0]);
        assert_eq!(time.get(), Some(first));
    }
}
