//! Emulated devices, one module each, reachable through the buses in `bus`.

pub mod boot_timer;
pub mod bus;
pub mod i8042;
pub mod serial;
pub mod virtio;

use std::io;

use vm_superio::Trigger;
use vmm_sys_util::eventfd::EventFd;

/// An eventfd registered as an irqfd: writing it raises the guest interrupt line.
#[derive(Debug)]
pub struct IrqTrigger(pub EventFd);

impl IrqTrigger {
    /// A fresh non-blocking eventfd.
    pub fn new() -> io::Result<Self> {
        Ok(IrqTrigger(EventFd::new(libc::EFD_NONBLOCK)?))
    }
}

impl Trigger for IrqTrigger {
    type E = io::Error;

    fn trigger(&self) -> io::Result<()> {
        self.0.write(1)
    }
}
