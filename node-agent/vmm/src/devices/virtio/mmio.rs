//! The virtio-mmio transport (virtio 1.2 §4.2.2): the register window the guest
//! drives to negotiate features, set up virtqueues and notify the device.

use virtio_bindings::virtio_config as vc;
use virtio_queue::{Queue, QueueT};
use vm_memory::GuestMemoryMmap;

use super::{INT_USED_RING, VIRTIO_F_VERSION_1, VirtioDevice, VirtioInterrupt};
use crate::devices::bus::BusDevice;

const MAGIC: u32 = 0x7472_6976; // "virt"
const VERSION: u32 = 2;
const VENDOR_ID: u32 = 0x5256_4444; // "DDVR"

/// Device status bits (virtio 1.2 §2.1).
pub const STATUS_ACKNOWLEDGE: u32 = vc::VIRTIO_CONFIG_S_ACKNOWLEDGE;
/// Driver found.
pub const STATUS_DRIVER: u32 = vc::VIRTIO_CONFIG_S_DRIVER;
/// Driver ready.
pub const STATUS_DRIVER_OK: u32 = vc::VIRTIO_CONFIG_S_DRIVER_OK;
/// Features negotiated.
pub const STATUS_FEATURES_OK: u32 = vc::VIRTIO_CONFIG_S_FEATURES_OK;
/// Device needs reset.
pub const STATUS_NEEDS_RESET: u32 = vc::VIRTIO_CONFIG_S_NEEDS_RESET;
/// Driver gave up.
pub const STATUS_FAILED: u32 = vc::VIRTIO_CONFIG_S_FAILED;

/// Register offsets.
pub mod reg {
    use virtio_bindings::virtio_mmio as m;

    /// "virt".
    pub const MAGIC: u64 = m::VIRTIO_MMIO_MAGIC_VALUE as u64;
    /// Transport version.
    pub const VERSION: u64 = m::VIRTIO_MMIO_VERSION as u64;
    /// Device type.
    pub const DEVICE_ID: u64 = m::VIRTIO_MMIO_DEVICE_ID as u64;
    /// Vendor.
    pub const VENDOR_ID: u64 = m::VIRTIO_MMIO_VENDOR_ID as u64;
    /// Device features (32 bits selected by DEVICE_FEATURES_SEL).
    pub const DEVICE_FEATURES: u64 = m::VIRTIO_MMIO_DEVICE_FEATURES as u64;
    /// Device features word select.
    pub const DEVICE_FEATURES_SEL: u64 = m::VIRTIO_MMIO_DEVICE_FEATURES_SEL as u64;
    /// Driver features.
    pub const DRIVER_FEATURES: u64 = m::VIRTIO_MMIO_DRIVER_FEATURES as u64;
    /// Driver features word select.
    pub const DRIVER_FEATURES_SEL: u64 = m::VIRTIO_MMIO_DRIVER_FEATURES_SEL as u64;
    /// Queue select.
    pub const QUEUE_SEL: u64 = m::VIRTIO_MMIO_QUEUE_SEL as u64;
    /// Max size of the selected queue.
    pub const QUEUE_NUM_MAX: u64 = m::VIRTIO_MMIO_QUEUE_NUM_MAX as u64;
    /// Size of the selected queue.
    pub const QUEUE_NUM: u64 = m::VIRTIO_MMIO_QUEUE_NUM as u64;
    /// Selected queue ready.
    pub const QUEUE_READY: u64 = m::VIRTIO_MMIO_QUEUE_READY as u64;
    /// Queue notify.
    pub const QUEUE_NOTIFY: u64 = m::VIRTIO_MMIO_QUEUE_NOTIFY as u64;
    /// Interrupt status.
    pub const INTERRUPT_STATUS: u64 = m::VIRTIO_MMIO_INTERRUPT_STATUS as u64;
    /// Interrupt acknowledge.
    pub const INTERRUPT_ACK: u64 = m::VIRTIO_MMIO_INTERRUPT_ACK as u64;
    /// Device status.
    pub const STATUS: u64 = m::VIRTIO_MMIO_STATUS as u64;
    /// Descriptor table address, low word.
    pub const QUEUE_DESC_LOW: u64 = m::VIRTIO_MMIO_QUEUE_DESC_LOW as u64;
    /// Descriptor table address, high word.
    pub const QUEUE_DESC_HIGH: u64 = m::VIRTIO_MMIO_QUEUE_DESC_HIGH as u64;
    /// Available ring address, low word.
    pub const QUEUE_AVAIL_LOW: u64 = m::VIRTIO_MMIO_QUEUE_AVAIL_LOW as u64;
    /// Available ring address, high word.
    pub const QUEUE_AVAIL_HIGH: u64 = m::VIRTIO_MMIO_QUEUE_AVAIL_HIGH as u64;
    /// Used ring address, low word.
    pub const QUEUE_USED_LOW: u64 = m::VIRTIO_MMIO_QUEUE_USED_LOW as u64;
    /// Used ring address, high word.
    pub const QUEUE_USED_HIGH: u64 = m::VIRTIO_MMIO_QUEUE_USED_HIGH as u64;
    /// Config generation counter.
    pub const CONFIG_GENERATION: u64 = m::VIRTIO_MMIO_CONFIG_GENERATION as u64;
    /// Start of device config space.
    pub const CONFIG: u64 = m::VIRTIO_MMIO_CONFIG as u64;
}

/// Transport state a snapshot carries (the device model itself is rebuilt from config).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TransportState {
    /// Device status register.
    pub status: u32,
    /// Features the driver acked.
    pub driver_features: u64,
    /// Selector registers.
    pub selectors: [u32; 3],
    /// Interrupt status register.
    pub interrupt_status: u32,
    /// Per queue: (size, ready, desc, avail, used, next_avail, next_used).
    pub queues: Vec<(u16, bool, u64, u64, u64, u16, u16)>,
}

/// One virtio device behind its MMIO window.
pub struct MmioTransport {
    device: Box<dyn VirtioDevice>,
    mem: GuestMemoryMmap,
    interrupt: VirtioInterrupt,
    queues: Vec<Queue>,
    queue_sel: u32,
    device_features_sel: u32,
    driver_features_sel: u32,
    driver_features: u64,
    status: u32,
    activated: bool,
}

impl MmioTransport {
    /// Wraps `device`; queues whose advertised max size virtio-queue rejects are dropped
    /// to a working size, so a device bug cannot make the transport panic.
    pub fn new(
        device: Box<dyn VirtioDevice>,
        mem: GuestMemoryMmap,
        interrupt: VirtioInterrupt,
    ) -> Self {
        let queues = device
            .queue_max_sizes()
            .iter()
            .filter_map(|&max| Queue::new(max).or_else(|_| Queue::new(256)).ok())
            .collect();
        MmioTransport {
            device,
            mem,
            interrupt,
            queues,
            queue_sel: 0,
            device_features_sel: 0,
            driver_features_sel: 0,
            driver_features: 0,
            status: 0,
            activated: false,
        }
    }

    /// Device status register (tests and snapshots).
    pub fn status(&self) -> u32 {
        self.status
    }

    fn selected_queue(&mut self) -> Option<&mut Queue> {
        let sel = usize::try_from(self.queue_sel).ok()?;
        self.queues.get_mut(sel)
    }

    fn features_word(&self) -> u32 {
        let features = self.device.features() | VIRTIO_F_VERSION_1;
        match self.device_features_sel {
            0 => features as u32,
            1 => (features >> 32) as u32,
            _ => 0,
        }
    }

    fn reset(&mut self) {
        self.device.reset();
        for q in &mut self.queues {
            q.reset();
        }
        self.status = 0;
        self.driver_features = 0;
        self.queue_sel = 0;
        self.device_features_sel = 0;
        self.driver_features_sel = 0;
        self.activated = false;
        self.interrupt.ack(u32::MAX);
    }

    fn set_status(&mut self, value: u32) {
        if value == 0 {
            self.reset();
            return;
        }
        // The driver may only add bits (§3.1.1); anything else is a driver bug we ignore.
        if value & self.status != self.status {
            return;
        }
        let newly = value & !self.status;
        if newly & STATUS_FEATURES_OK != 0 {
            let offered = self.device.features() | VIRTIO_F_VERSION_1;
            let acceptable = self.driver_features & !offered == 0
                && self.driver_features & VIRTIO_F_VERSION_1 != 0;
            if !acceptable {
                // Refuse: leave FEATURES_OK clear so the driver sees the failure.
                self.status = value & !STATUS_FEATURES_OK;
                return;
            }
        }
        self.status = value;
        if newly & STATUS_DRIVER_OK != 0 && self.status & STATUS_FEATURES_OK != 0 {
            let mem = &self.mem;
            let all_valid = self.queues.iter().all(|q| !q.ready() || q.is_valid(mem));
            if all_valid {
                self.device
                    .activate(self.driver_features, self.interrupt.clone());
                self.activated = true;
            } else {
                self.status |= STATUS_NEEDS_RESET;
            }
        }
    }

    fn notify(&mut self, index: u32) {
        let Ok(index) = usize::try_from(index) else {
            return;
        };
        if !self.activated || index >= self.queues.len() {
            return;
        }
        if self.device.queue_notify(index, &mut self.queues, &self.mem) {
            self.interrupt.signal(INT_USED_RING);
        }
    }

    /// Lets the device move data that arrived on its host backend.
    pub fn backend_ready(&mut self) {
        if self.activated && self.device.backend_ready(&mut self.queues, &self.mem) {
            self.interrupt.signal(INT_USED_RING);
        }
    }

    /// True when the device has a host backend fd at all.
    pub fn has_backend(&self) -> bool {
        self.device.backend_fd().is_some()
    }

    /// The device's host fd to poll, unless the device is inactive or stalled.
    pub fn backend_poll_fd(&self) -> Option<std::os::fd::RawFd> {
        if self.activated && !self.device.backend_stalled() {
            self.device.backend_fd()
        } else {
            None
        }
    }

    /// State for a snapshot.
    pub fn state(&self) -> TransportState {
        TransportState {
            status: self.status,
            driver_features: self.driver_features,
            selectors: [
                self.queue_sel,
                self.device_features_sel,
                self.driver_features_sel,
            ],
            interrupt_status: self.interrupt.status(),
            queues: self
                .queues
                .iter()
                .map(|q| {
                    (
                        q.size(),
                        q.ready(),
                        q.desc_table(),
                        q.avail_ring(),
                        q.used_ring(),
                        q.next_avail(),
                        q.next_used(),
                    )
                })
                .collect(),
        }
    }

    /// Applies snapshot state to a freshly built transport and re-activates the device.
    pub fn restore(&mut self, state: &TransportState) -> Result<(), String> {
        if state.queues.len() != self.queues.len() {
            return Err(format!(
                "snapshot has {} queues, device has {}",
                state.queues.len(),
                self.queues.len()
            ));
        }
        for (q, &(size, ready, desc, avail, used, next_avail, next_used)) in
            self.queues.iter_mut().zip(&state.queues)
        {
            q.try_set_size(size)
                .map_err(|e| format!("queue size {size}: {e:?}"))?;
            q.set_desc_table_address(Some(desc as u32), Some((desc >> 32) as u32));
            q.set_avail_ring_address(Some(avail as u32), Some((avail >> 32) as u32));
            q.set_used_ring_address(Some(used as u32), Some((used >> 32) as u32));
            q.set_next_avail(next_avail);
            q.set_next_used(next_used);
            q.set_ready(ready);
        }
        [
            self.queue_sel,
            self.device_features_sel,
            self.driver_features_sel,
        ] = state.selectors;
        self.driver_features = state.driver_features;
        self.status = state.status;
        self.interrupt.set_status(state.interrupt_status);
        if self.status & STATUS_DRIVER_OK != 0 && self.status & STATUS_NEEDS_RESET == 0 {
            self.device
                .activate(self.driver_features, self.interrupt.clone());
            self.activated = true;
        }
        Ok(())
    }
}

impl BusDevice for MmioTransport {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        if offset >= reg::CONFIG {
            self.device.read_config(offset - reg::CONFIG, data);
            return;
        }
        if data.len() != 4 {
            data.fill(0);
            return;
        }
        let value = match offset {
            reg::MAGIC => MAGIC,
            reg::VERSION => VERSION,
            reg::DEVICE_ID => self.device.device_type(),
            reg::VENDOR_ID => VENDOR_ID,
            reg::DEVICE_FEATURES => self.features_word(),
            reg::QUEUE_NUM_MAX => self.selected_queue().map_or(0, |q| u32::from(q.max_size())),
            reg::QUEUE_READY => self.selected_queue().map_or(0, |q| u32::from(q.ready())),
            reg::INTERRUPT_STATUS => self.interrupt.status(),
            reg::STATUS => self.status,
            reg::CONFIG_GENERATION => 0,
            _ => 0,
        };
        data.copy_from_slice(&value.to_le_bytes());
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        if offset >= reg::CONFIG {
            // Config space of our devices is read-only.
            return;
        }
        let Ok(bytes) = <[u8; 4]>::try_from(data) else {
            return;
        };
        let value = u32::from_le_bytes(bytes);
        // Queue layout may only change before DRIVER_OK (§4.2.2.3.2).
        let queue_setup_allowed = self.status & STATUS_DRIVER_OK == 0;
        match offset {
            reg::DEVICE_FEATURES_SEL => self.device_features_sel = value,
            reg::DRIVER_FEATURES_SEL => self.driver_features_sel = value,
            reg::DRIVER_FEATURES if self.status & STATUS_FEATURES_OK == 0 => {
                match self.driver_features_sel {
                    0 => {
                        self.driver_features =
                            (self.driver_features & !0xffff_ffff) | u64::from(value)
                    }
                    1 => {
                        self.driver_features =
                            (self.driver_features & 0xffff_ffff) | (u64::from(value) << 32)
                    }
                    _ => {}
                }
            }
            reg::QUEUE_SEL => self.queue_sel = value,
            reg::QUEUE_NOTIFY => self.notify(value),
            reg::INTERRUPT_ACK => self.interrupt.ack(value),
            reg::STATUS => self.set_status(value),
            _ if queue_setup_allowed => {
                let Some(q) = self.selected_queue() else {
                    return;
                };
                match offset {
                    reg::QUEUE_NUM => {
                        // An invalid size is ignored; the driver reads back and notices.
                        let _ = u16::try_from(value).map(|size| q.try_set_size(size));
                    }
                    reg::QUEUE_READY => q.set_ready(value == 1),
                    reg::QUEUE_DESC_LOW => q.set_desc_table_address(Some(value), None),
                    reg::QUEUE_DESC_HIGH => q.set_desc_table_address(None, Some(value)),
                    reg::QUEUE_AVAIL_LOW => q.set_avail_ring_address(Some(value), None),
                    reg::QUEUE_AVAIL_HIGH => q.set_avail_ring_address(None, Some(value)),
                    reg::QUEUE_USED_LOW => q.set_used_ring_address(Some(value), None),
                    reg::QUEUE_USED_HIGH => q.set_used_ring_address(None, Some(value)),
                    _ => {}
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::IrqTrigger;

    struct Dummy;
    impl VirtioDevice for Dummy {
        fn device_type(&self) -> u32 {
            42
        }
        fn queue_max_sizes(&self) -> &[u16] {
            &[16]
        }
        fn features(&self) -> u64 {
            1 << 5
        }
        fn read_config(&self, offset: u64, data: &mut [u8]) {
            super::super::read_config_bytes(&[1, 2, 3, 4], offset, data);
        }
        fn activate(&mut self, _features: u64, _interrupt: VirtioInterrupt) {}
        fn queue_notify(&mut self, _: usize, _: &mut [Queue], _: &GuestMemoryMmap) -> bool {
            false
        }
        fn reset(&mut self) {}
    }

    fn transport() -> MmioTransport {
        let mem = crate::vstate::memory::create(1 << 20).unwrap();
        let irq = VirtioInterrupt::new(IrqTrigger::new().unwrap());
        MmioTransport::new(Box::new(Dummy), mem, irq)
    }

    fn read(t: &mut MmioTransport, off: u64) -> u32 {
        let mut b = [0u8; 4];
        t.read(off, &mut b);
        u32::from_le_bytes(b)
    }

    fn write(t: &mut MmioTransport, off: u64, v: u32) {
        t.write(off, &v.to_le_bytes());
    }

    #[test]
    fn identity_and_feature_words() {
        let mut t = transport();
        assert_eq!(read(&mut t, reg::MAGIC), 0x7472_6976);
        assert_eq!(read(&mut t, reg::VERSION), 2);
        assert_eq!(read(&mut t, reg::DEVICE_ID), 42);
        assert_eq!(read(&mut t, reg::DEVICE_FEATURES), 1 << 5);
        write(&mut t, reg::DEVICE_FEATURES_SEL, 1);
        assert_eq!(read(&mut t, reg::DEVICE_FEATURES), 1, "VERSION_1 in word 1");
        assert_eq!(read(&mut t, reg::QUEUE_NUM_MAX), 16);
        write(&mut t, reg::QUEUE_SEL, 7);
        assert_eq!(read(&mut t, reg::QUEUE_NUM_MAX), 0, "absent queue");
        let mut cfg = [0u8; 2];
        t.read(reg::CONFIG + 2, &mut cfg);
        assert_eq!(cfg, [3, 4]);
        let mut narrow = [0xffu8; 2];
        t.read(reg::MAGIC, &mut narrow);
        assert_eq!(narrow, [0, 0], "registers are 32-bit only");
    }

    #[test]
    fn features_ok_requires_version_1_and_offered_bits_only() {
        for (word0, word1, accepted) in [
            (0, 0, false),
            (1 << 5, 1, true),
            (1 << 6, 1, false),
            (0, 1, true),
        ] {
            let mut t = transport();
            write(&mut t, reg::STATUS, STATUS_ACKNOWLEDGE | STATUS_DRIVER);
            write(&mut t, reg::DRIVER_FEATURES_SEL, 0);
            write(&mut t, reg::DRIVER_FEATURES, word0);
            write(&mut t, reg::DRIVER_FEATURES_SEL, 1);
            write(&mut t, reg::DRIVER_FEATURES, word1);
            write(
                &mut t,
                reg::STATUS,
                STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK,
            );
            let ok = read(&mut t, reg::STATUS) & STATUS_FEATURES_OK != 0;
            assert_eq!(ok, accepted, "features {word1:#x}:{word0:#x}");
        }
    }

    #[test]
    fn status_zero_resets_and_bits_cannot_be_cleared() {
        let mut t = transport();
        write(&mut t, reg::STATUS, STATUS_ACKNOWLEDGE | STATUS_DRIVER);
        write(&mut t, reg::STATUS, STATUS_ACKNOWLEDGE);
        assert_eq!(
            t.status(),
            STATUS_ACKNOWLEDGE | STATUS_DRIVER,
            "clearing a bit is ignored"
        );
        write(&mut t, reg::QUEUE_NUM, 8);
        write(&mut t, reg::QUEUE_READY, 1);
        assert_eq!(read(&mut t, reg::QUEUE_READY), 1);
        write(&mut t, reg::STATUS, 0);
        assert_eq!(t.status(), 0);
        assert_eq!(read(&mut t, reg::QUEUE_READY), 0, "reset clears queues");
    }
}
