//! virtio-blk over a raw disk file: read, write, flush and get-id requests.

use std::fs::File;
use std::os::unix::fs::FileExt;

use virtio_bindings::virtio_blk as vb;
use virtio_queue::{Queue, QueueT};
use vm_memory::{Address, Bytes, GuestAddress, GuestMemoryMmap};

use super::{TYPE_BLOCK, VirtioDevice, VirtioInterrupt, read_config_bytes};

/// Sector size the protocol counts in.
pub const SECTOR_SIZE: u64 = 512;
/// Feature: device is read-only.
pub const VIRTIO_BLK_F_RO: u64 = 1 << vb::VIRTIO_BLK_F_RO;
/// Feature: flush command supported.
pub const VIRTIO_BLK_F_FLUSH: u64 = 1 << vb::VIRTIO_BLK_F_FLUSH;
/// Request type: read.
pub const VIRTIO_BLK_T_IN: u32 = vb::VIRTIO_BLK_T_IN;
/// Request type: write.
pub const VIRTIO_BLK_T_OUT: u32 = vb::VIRTIO_BLK_T_OUT;
/// Request type: flush.
pub const VIRTIO_BLK_T_FLUSH: u32 = vb::VIRTIO_BLK_T_FLUSH;
/// Request type: device id string.
pub const VIRTIO_BLK_T_GET_ID: u32 = vb::VIRTIO_BLK_T_GET_ID;
/// Status byte: success (the binding constants are u32; the wire field is one byte).
pub const VIRTIO_BLK_S_OK: u8 = vb::VIRTIO_BLK_S_OK as u8;
/// Status byte: I/O error.
pub const VIRTIO_BLK_S_IOERR: u8 = vb::VIRTIO_BLK_S_IOERR as u8;
/// Status byte: unsupported request.
pub const VIRTIO_BLK_S_UNSUPP: u8 = vb::VIRTIO_BLK_S_UNSUPP as u8;

/// Largest host buffer one data copy uses, whatever length the guest claims.
const CHUNK: usize = 64 * 1024;
const QUEUE_SIZES: [u16; 1] = [256];

/// The device.
pub struct Block {
    disk: File,
    capacity: u64,
    read_only: bool,
    id: [u8; 20],
    config: [u8; 8],
}

/// Why a request failed; maps to the status byte.
enum RequestError {
    Io,
    Unsupported,
}

impl Block {
    /// A device over `disk`, whose size sets the capacity (rounded down to whole sectors).
    pub fn new(disk: File, read_only: bool, id: &str) -> std::io::Result<Self> {
        let len = disk.metadata()?.len();
        let capacity = len / SECTOR_SIZE;
        let mut id_bytes = [0u8; 20];
        let n = id.len().min(20);
        id_bytes[..n].copy_from_slice(&id.as_bytes()[..n]);
        Ok(Block {
            disk,
            capacity,
            read_only,
            id: id_bytes,
            config: capacity.to_le_bytes(),
        })
    }

    /// Handles one chain; returns the bytes written into guest memory.
    fn handle_chain(&mut self, descs: &[(GuestAddress, u32, bool)], mem: &GuestMemoryMmap) -> u32 {
        // Layout: readable 16-byte header, data descriptors, one writable status byte.
        let (Some(&(hdr_addr, hdr_len, hdr_w)), Some(&(st_addr, st_len, st_w))) =
            (descs.first(), descs.last())
        else {
            return 0;
        };
        if descs.len() < 2 || hdr_w || hdr_len < 16 || !st_w || st_len < 1 {
            return 0;
        }
        let mut hdr = [0u8; 16];
        if mem.read_slice(&mut hdr, hdr_addr).is_err() {
            return 0;
        }
        let req_type = u32::from_le_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]);
        let mut sector_bytes = [0u8; 8];
        sector_bytes.copy_from_slice(&hdr[8..16]);
        let sector = u64::from_le_bytes(sector_bytes);
        let data = &descs[1..descs.len() - 1];
        let (status, written) = match self.execute(req_type, sector, data, mem) {
            Ok(written) => (VIRTIO_BLK_S_OK, written),
            Err(RequestError::Io) => (VIRTIO_BLK_S_IOERR, 0),
            Err(RequestError::Unsupported) => (VIRTIO_BLK_S_UNSUPP, 0),
        };
        if mem.write_obj(status, st_addr).is_err() {
            return written;
        }
        written.saturating_add(1)
    }

    fn execute(
        &mut self,
        req_type: u32,
        sector: u64,
        data: &[(GuestAddress, u32, bool)],
        mem: &GuestMemoryMmap,
    ) -> Result<u32, RequestError> {
        let disk_bytes = self.capacity * SECTOR_SIZE;
        let mut offset = sector.checked_mul(SECTOR_SIZE).ok_or(RequestError::Io)?;
        let mut written: u32 = 0;
        match req_type {
            VIRTIO_BLK_T_IN | VIRTIO_BLK_T_OUT => {
                let is_read = req_type == VIRTIO_BLK_T_IN;
                if !is_read && self.read_only {
                    return Err(RequestError::Io);
                }
                for &(addr, len, device_writable) in data {
                    // Reads need device-writable buffers and writes driver-readable ones.
                    if device_writable != is_read {
                        return Err(RequestError::Io);
                    }
                    let end = offset.checked_add(u64::from(len)).ok_or(RequestError::Io)?;
                    if end > disk_bytes {
                        return Err(RequestError::Io);
                    }
                    self.copy(is_read, addr, len, offset, mem)?;
                    offset = end;
                    if is_read {
                        written = written.saturating_add(len);
                    }
                }
                Ok(written)
            }
            VIRTIO_BLK_T_FLUSH => self
                .disk
                .sync_data()
                .map(|_| 0)
                .map_err(|_| RequestError::Io),
            VIRTIO_BLK_T_GET_ID => {
                let &(addr, len, true) = data.first().ok_or(RequestError::Io)? else {
                    return Err(RequestError::Io);
                };
                let n = (len as usize).min(self.id.len());
                mem.write_slice(&self.id[..n], addr)
                    .map_err(|_| RequestError::Io)?;
                Ok(n as u32)
            }
            _ => Err(RequestError::Unsupported),
        }
    }

    /// Moves `len` bytes between guest `addr` and disk `offset` in bounded chunks.
    fn copy(
        &mut self,
        is_read: bool,
        addr: GuestAddress,
        len: u32,
        offset: u64,
        mem: &GuestMemoryMmap,
    ) -> Result<(), RequestError> {
        let mut buf = vec![0u8; (len as usize).min(CHUNK)];
        let mut done: u64 = 0;
        while done < u64::from(len) {
            let n = ((u64::from(len) - done) as usize).min(CHUNK);
            let chunk = &mut buf[..n];
            let gaddr = addr.checked_add(done).ok_or(RequestError::Io)?;
            if is_read {
                self.disk
                    .read_exact_at(chunk, offset + done)
                    .map_err(|_| RequestError::Io)?;
                mem.write_slice(chunk, gaddr)
                    .map_err(|_| RequestError::Io)?;
            } else {
                mem.read_slice(chunk, gaddr).map_err(|_| RequestError::Io)?;
                self.disk
                    .write_all_at(chunk, offset + done)
                    .map_err(|_| RequestError::Io)?;
            }
            done += n as u64;
        }
        Ok(())
    }
}

/// Collects a chain's descriptors (address, length, device-writable).
pub fn chain_descriptors<M>(
    chain: virtio_queue::DescriptorChain<M>,
) -> Vec<(GuestAddress, u32, bool)>
where
    M: Clone + std::ops::Deref,
    M::Target: vm_memory::GuestMemory,
{
    chain
        .map(|d| (d.addr(), d.len(), d.is_write_only()))
        .collect()
}

impl VirtioDevice for Block {
    fn device_type(&self) -> u32 {
        TYPE_BLOCK
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &QUEUE_SIZES
    }

    fn features(&self) -> u64 {
        let ro = if self.read_only { VIRTIO_BLK_F_RO } else { 0 };
        VIRTIO_BLK_F_FLUSH | ro
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        read_config_bytes(&self.config, offset, data);
    }

    fn activate(&mut self, _features: u64, _interrupt: VirtioInterrupt) {}

    fn queue_notify(&mut self, index: usize, queues: &mut [Queue], mem: &GuestMemoryMmap) -> bool {
        let Some(queue) = queues.get_mut(index) else {
            return false;
        };
        let mut used = false;
        while let Some(chain) = queue.pop_descriptor_chain(mem) {
            let head = chain.head_index();
            let descs = chain_descriptors(chain);
            let len = self.handle_chain(&descs, mem);
            if queue.add_used(mem, head, len).is_err() {
                break;
            }
            used = true;
        }
        used
    }

    fn reset(&mut self) {}
}
