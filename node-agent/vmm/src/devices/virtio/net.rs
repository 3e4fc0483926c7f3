//! virtio-net over a tap: TX chains go to the tap as-is (vnet header included); frames
//! read from the tap fill RX chains.

use std::io;
use std::os::fd::{AsRawFd, RawFd};

use virtio_queue::{Queue, QueueT};
use vm_memory::{Bytes, GuestMemoryMmap};

use super::block::chain_descriptors;
use super::tap::{Tap, VNET_HDR_LEN};
use super::{TYPE_NET, VirtioDevice, VirtioInterrupt, read_config_bytes};

/// Feature: the device has a MAC in config space.
pub const VIRTIO_NET_F_MAC: u64 = 1 << virtio_bindings::virtio_net::VIRTIO_NET_F_MAC;
const RX: usize = 0;
const TX: usize = 1;
const QUEUE_SIZES: [u16; 2] = [256, 256];
/// Largest frame plus header we move (no GSO negotiated: 64 KiB covers any MTU).
const MAX_FRAME: usize = 65_562;

/// Where frames go and come from: a tap in production, a fake in tests. Frames carry
/// the 12-byte virtio-net header in front.
pub trait FrameBackend: Send {
    /// Reads one frame; `WouldBlock` when none is queued.
    fn read_frame(&mut self, buf: &mut [u8]) -> io::Result<usize>;
    /// Writes one frame.
    fn write_frame(&mut self, frame: &[u8]) -> io::Result<usize>;
    /// An fd that polls readable when a frame is queued.
    fn poll_fd(&self) -> Option<RawFd>;
}

impl FrameBackend for Tap {
    fn read_frame(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        Tap::read_frame(self, buf)
    }
    fn write_frame(&mut self, frame: &[u8]) -> io::Result<usize> {
        Tap::write_frame(self, frame)
    }
    fn poll_fd(&self) -> Option<RawFd> {
        Some(self.as_raw_fd())
    }
}

/// The device.
pub struct Net {
    tap: Box<dyn FrameBackend>,
    config: [u8; 6],
    /// A frame read from the tap that found no RX buffer yet.
    pending: Option<Vec<u8>>,
    frame: Vec<u8>,
}

impl Net {
    /// A NIC with `mac` on `tap` (a `Tap`, or a fake in tests).
    pub fn new(tap: Box<dyn FrameBackend>, mac: [u8; 6]) -> Self {
        Net {
            tap,
            config: mac,
            pending: None,
            frame: vec![0; MAX_FRAME],
        }
    }

    fn transmit(&mut self, queue: &mut Queue, mem: &GuestMemoryMmap) -> bool {
        let mut used = false;
        while let Some(chain) = queue.pop_descriptor_chain(mem) {
            let head = chain.head_index();
            let mut frame = Vec::new();
            for (addr, len, writable) in chain_descriptors(chain) {
                // Drop frames that are malformed or too big rather than trusting lengths.
                let room = MAX_FRAME.saturating_sub(frame.len());
                if writable || len as usize > room {
                    frame.clear();
                    break;
                }
                let start = frame.len();
                frame.resize(start + len as usize, 0);
                if mem.read_slice(&mut frame[start..], addr).is_err() {
                    frame.clear();
                    break;
                }
            }
            if frame.len() > VNET_HDR_LEN {
                // A full tap queue drops the frame, as a real NIC would.
                let _ = self.tap.write_frame(&frame);
            }
            if queue.add_used(mem, head, 0).is_err() {
                break;
            }
            used = true;
        }
        used
    }

    /// Copies `frame` into the next RX chain; false when the guest posted none.
    fn deliver(queue: &mut Queue, mem: &GuestMemoryMmap, frame: &[u8]) -> Option<bool> {
        let chain = queue.pop_descriptor_chain(mem)?;
        let head = chain.head_index();
        let mut written = 0usize;
        for (addr, len, writable) in chain_descriptors(chain) {
            if !writable || written >= frame.len() {
                break;
            }
            let n = (len as usize).min(frame.len() - written);
            if mem.write_slice(&frame[written..written + n], addr).is_err() {
                break;
            }
            written += n;
        }
        let ok = queue.add_used(mem, head, written as u32).is_ok();
        Some(ok)
    }

    fn receive(&mut self, queue: &mut Queue, mem: &GuestMemoryMmap) -> bool {
        let mut used = false;
        loop {
            let frame = match self.pending.take() {
                Some(f) => f,
                None => match self.tap.read_frame(&mut self.frame) {
                    Ok(n) if n >= VNET_HDR_LEN => {
                        let mut f = self.frame[..n].to_vec();
                        // num_buffers must be 1 without VIRTIO_NET_F_MRG_RXBUF.
                        f[10..12].copy_from_slice(&1u16.to_le_bytes());
                        f
                    }
                    Ok(0) => return used,
                    Ok(_) => continue,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => return used,
                },
            };
            match Self::deliver(queue, mem, &frame) {
                Some(ok) => used |= ok,
                None => {
                    self.pending = Some(frame);
                    return used;
                }
            }
        }
    }
}

impl VirtioDevice for Net {
    fn device_type(&self) -> u32 {
        TYPE_NET
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &QUEUE_SIZES
    }

    fn features(&self) -> u64 {
        VIRTIO_NET_F_MAC
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        read_config_bytes(&self.config, offset, data);
    }

    fn activate(&mut self, _features: u64, _interrupt: VirtioInterrupt) {}

    fn queue_notify(&mut self, index: usize, queues: &mut [Queue], mem: &GuestMemoryMmap) -> bool {
        match index {
            RX => queues.get_mut(RX).is_some_and(|q| self.receive(q, mem)),
            TX => queues.get_mut(TX).is_some_and(|q| self.transmit(q, mem)),
            _ => false,
        }
    }

    fn backend_ready(&mut self, queues: &mut [Queue], mem: &GuestMemoryMmap) -> bool {
        queues.get_mut(RX).is_some_and(|q| self.receive(q, mem))
    }

    fn backend_fd(&self) -> Option<RawFd> {
        self.tap.poll_fd()
    }

    fn backend_stalled(&self) -> bool {
        self.pending.is_some()
    }

    fn reset(&mut self) {
        self.pending = None;
    }
}
