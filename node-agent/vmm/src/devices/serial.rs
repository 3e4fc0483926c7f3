//! COM1: a 16550A UART (vm-superio) whose output goes to the pod's log.

use std::io::{self, Write};

use vm_superio::Serial;
use vm_superio::serial::{NoEvents, SerialState};

use super::IrqTrigger;
use super::bus::BusDevice;
use crate::config::SharedWriter;

/// Output sink of the UART: file, shared writer or nothing.
pub enum SerialSink {
    /// Discard.
    Sink,
    /// A file or any owned writer.
    Owned(Box<dyn Write + Send>),
    /// A caller's shared writer.
    Shared(SharedWriter),
}

impl Write for SerialSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            SerialSink::Sink => Ok(buf.len()),
            SerialSink::Owned(w) => w.write(buf),
            SerialSink::Shared(w) => match w.lock() {
                Ok(mut w) => w.write(buf),
                Err(_) => Ok(buf.len()),
            },
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            SerialSink::Sink => Ok(()),
            SerialSink::Owned(w) => w.flush(),
            SerialSink::Shared(w) => w.lock().map_or(Ok(()), |mut w| w.flush()),
        }
    }
}

/// The UART on the port bus.
pub struct SerialDevice {
    uart: Serial<IrqTrigger, NoEvents, SerialSink>,
}

impl SerialDevice {
    /// A UART raising `irq` and writing to `out`.
    pub fn new(irq: IrqTrigger, out: SerialSink) -> Self {
        SerialDevice {
            uart: Serial::new(irq, out),
        }
    }

    /// Register state for a snapshot.
    pub fn state(&self) -> SerialState {
        self.uart.state()
    }

    /// Loads snapshot registers, keeping this device's irq line and output.
    pub fn restore(&mut self, state: &SerialState) -> Result<(), String> {
        let evt = || {
            self.uart
                .interrupt_evt()
                .0
                .try_clone()
                .map_err(|e| e.to_string())
        };
        let placeholder = Serial::new(IrqTrigger(evt()?), SerialSink::Sink);
        let irq = IrqTrigger(evt()?);
        let out = std::mem::replace(&mut self.uart, placeholder).into_writer();
        self.uart = Serial::from_state(state, irq, NoEvents, out).map_err(|e| format!("{e:?}"))?;
        Ok(())
    }
}

impl BusDevice for SerialDevice {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        // Registers are byte wide; wider or out-of-range reads see nothing.
        match (data.len(), u8::try_from(offset)) {
            (1, Ok(off)) if off < 8 => data[0] = self.uart.read(off),
            _ => data.fill(0),
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        if let (1, Ok(off)) = (data.len(), u8::try_from(offset)) {
            // A failed output write (full disk) must not stop the guest: drop the byte.
            let _ = self.uart.write(off, data[0]);
        }
    }
}
