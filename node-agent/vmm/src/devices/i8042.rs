//! The i8042 keyboard controller, kept for one job: a guest reset (0xFE to port 0x64)
//! ends the VM with `VmExit::GuestReset`.

use std::convert::Infallible;
use std::sync::Arc;

use vm_superio::{I8042Device, Trigger};

use super::bus::BusDevice;
use crate::exit::{ExitSignal, VmExit};

/// Raises `GuestReset` on the VM's exit signal.
pub struct ResetTrigger(pub Arc<ExitSignal>);

impl Trigger for ResetTrigger {
    type E = Infallible;

    fn trigger(&self) -> Result<(), Infallible> {
        self.0.raise(VmExit::GuestReset);
        Ok(())
    }
}

/// The controller on the port bus at 0x60..0x65.
pub struct I8042 {
    inner: I8042Device<ResetTrigger>,
}

impl I8042 {
    /// A controller reporting resets to `exit`.
    pub fn new(exit: Arc<ExitSignal>) -> Self {
        I8042 {
            inner: I8042Device::new(ResetTrigger(exit)),
        }
    }
}

impl BusDevice for I8042 {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        let value = u8::try_from(offset).map_or(0, |off| self.inner.read(off));
        data.fill(value);
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        if let (1, Ok(off)) = (data.len(), u8::try_from(offset)) {
            let _ = self.inner.write(off, data[0]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_command_raises_guest_reset() {
        let exit = Arc::new(ExitSignal::default());
        let mut dev = I8042::new(exit.clone());
        dev.write(0, &[0xfe]);
        dev.write(4, &[0x12]);
        dev.write(4, &[0xfe, 0]);
        assert_eq!(exit.get(), None);
        dev.write(4, &[0xfe]);
        assert_eq!(exit.get(), Some(VmExit::GuestReset));
    }
}
