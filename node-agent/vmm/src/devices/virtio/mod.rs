//! Virtio devices over the MMIO transport (virtio 1.x, split virtqueues).

pub mod block;
pub mod mmio;
pub mod net;
pub mod tap;

use std::os::fd::RawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use virtio_queue::Queue;
use vm_memory::GuestMemoryMmap;

use super::IrqTrigger;
use vm_superio::Trigger;

use virtio_bindings::{virtio_config, virtio_ids, virtio_mmio};

/// VIRTIO_F_VERSION_1: we only speak modern virtio.
pub const VIRTIO_F_VERSION_1: u64 = 1 << virtio_config::VIRTIO_F_VERSION_1;
/// Interrupt status bit: a used ring changed.
pub const INT_USED_RING: u32 = virtio_mmio::VIRTIO_MMIO_INT_VRING;
/// Interrupt status bit: the config space changed.
pub const INT_CONFIG: u32 = virtio_mmio::VIRTIO_MMIO_INT_CONFIG;
/// Virtio device type: network card.
pub const TYPE_NET: u32 = virtio_ids::VIRTIO_ID_NET;
/// Virtio device type: block device.
pub const TYPE_BLOCK: u32 = virtio_ids::VIRTIO_ID_BLOCK;

/// The transport's interrupt line plus the status register the guest reads to see why.
#[derive(Debug, Clone)]
pub struct VirtioInterrupt {
    status: Arc<AtomicU32>,
    irq: Arc<IrqTrigger>,
}

impl VirtioInterrupt {
    /// Wraps an irqfd.
    pub fn new(irq: IrqTrigger) -> Self {
        VirtioInterrupt {
            status: Arc::new(AtomicU32::new(0)),
            irq: Arc::new(irq),
        }
    }

    /// Sets `bits` in the status register and raises the line.
    pub fn signal(&self, bits: u32) {
        self.status.fetch_or(bits, Ordering::SeqCst);
        // A failed eventfd write means the VM is being torn down; nothing to tell.
        let _ = self.irq.trigger();
    }

    /// Current status register.
    pub fn status(&self) -> u32 {
        self.status.load(Ordering::SeqCst)
    }

    /// Guest acknowledged `bits`.
    pub fn ack(&self, bits: u32) {
        self.status.fetch_and(!bits, Ordering::SeqCst);
    }

    /// Restores the register from a snapshot.
    pub fn set_status(&self, value: u32) {
        self.status.store(value, Ordering::SeqCst);
    }
}

/// A virtio device model behind the MMIO transport. All guest-visible values that reach
/// it (queue contents, config offsets) are untrusted.
pub trait VirtioDevice: Send {
    /// Virtio device type (`TYPE_NET`, `TYPE_BLOCK`).
    fn device_type(&self) -> u32;
    /// Maximum size of each queue; the number of queues is its length.
    fn queue_max_sizes(&self) -> &[u16];
    /// Feature bits offered.
    fn features(&self) -> u64;
    /// Reads device config space.
    fn read_config(&self, offset: u64, data: &mut [u8]);
    /// The driver set DRIVER_OK with `features` acked; queues are valid from here on.
    fn activate(&mut self, features: u64, interrupt: VirtioInterrupt);
    /// The driver notified queue `index`. Returns true when a used ring changed.
    fn queue_notify(&mut self, index: usize, queues: &mut [Queue], mem: &GuestMemoryMmap) -> bool;
    /// Host-side readiness (e.g. tap readable). Returns true when a used ring changed.
    fn backend_ready(&mut self, _queues: &mut [Queue], _mem: &GuestMemoryMmap) -> bool {
        false
    }
    /// A host fd whose readability means `backend_ready` has work.
    fn backend_fd(&self) -> Option<RawFd> {
        None
    }
    /// True while the device cannot take more host input (e.g. no RX buffers posted).
    fn backend_stalled(&self) -> bool {
        false
    }
    /// The driver reset the device.
    fn reset(&mut self);
}

/// Copies a byte range out of a config-space image; out-of-range bytes read as zero.
pub fn read_config_bytes(config: &[u8], offset: u64, data: &mut [u8]) {
    data.fill(0);
    let Ok(start) = usize::try_from(offset) else {
        return;
    };
    if let Some(src) = config.get(start..) {
        let n = src.len().min(data.len());
        data[..n].copy_from_slice(&src[..n]);
    }
}
