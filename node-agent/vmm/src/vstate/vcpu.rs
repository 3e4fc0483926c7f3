//! vCPU threads: the KVM_RUN loop dispatching port and MMIO exits to the buses, and the
//! pause/save/stop protocol the VM owner drives.

use std::sync::{Arc, Condvar, Mutex, PoisonError};

use kvm_bindings::{
    Msrs, kvm_debugregs, kvm_fpu, kvm_lapic_state, kvm_mp_state, kvm_msr_entry, kvm_regs,
    kvm_sregs, kvm_vcpu_events, kvm_xcrs, kvm_xsave,
};
use kvm_ioctls::{VcpuExit, VcpuFd};

use crate::devices::bus::Bus;
use crate::exit::{ExitSignal, VmExit};
use crate::snapshot::codec::{CodecError, StateReader, StateWriter};

/// KVM_SYSTEM_EVENT types.
const SYSTEM_EVENT_SHUTDOWN: u32 = 1;
const SYSTEM_EVENT_RESET: u32 = 2;

/// What the owner wants the vCPUs to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Run the guest.
    Run,
    /// Leave KVM_RUN, save state, and wait for the next command.
    Pause,
    /// Leave the thread.
    Stop,
}

/// Shared command word plus the per-vCPU acknowledgements of a pause.
#[derive(Default)]
pub struct VcpuControl {
    inner: Mutex<ControlState>,
    changed: Condvar,
}

#[derive(Default)]
struct ControlState {
    command: Option<Command>,
    /// Bumped on every pause so a vCPU saves once per request.
    epoch: u64,
    paused: Vec<(u8, Result<VcpuState, String>)>,
}

impl VcpuControl {
    fn lock(&self) -> std::sync::MutexGuard<'_, ControlState> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Current command (Run until told otherwise).
    pub fn command(&self) -> (Command, u64) {
        let s = self.lock();
        (s.command.unwrap_or(Command::Run), s.epoch)
    }

    /// Sets the command; a pause starts a new collection of vCPU states.
    pub fn set(&self, command: Command) {
        let mut s = self.lock();
        if command == Command::Pause {
            s.epoch += 1;
            s.paused.clear();
        }
        s.command = Some(command);
        self.changed.notify_all();
    }

    fn report(&self, index: u8, state: Result<VcpuState, String>) {
        let mut s = self.lock();
        s.paused.push((index, state));
        self.changed.notify_all();
    }

    /// Parks the calling vCPU until the command is no longer Pause (or a newer pause).
    fn wait_while_paused(&self, epoch: u64) {
        let guard = self.lock();
        let _guard = self
            .changed
            .wait_while(guard, |s| {
                s.command == Some(Command::Pause) && s.epoch == epoch
            })
            .unwrap_or_else(PoisonError::into_inner);
    }

    /// Number of vCPUs that have parked since the last pause.
    pub fn paused_count(&self) -> usize {
        self.lock().paused.len()
    }

    /// Takes the saved states (sorted by vCPU index) once all `count` parked.
    pub fn take_states(&self, count: usize) -> Option<Vec<Result<VcpuState, String>>> {
        let mut s = self.lock();
        if s.paused.len() < count {
            return None;
        }
        let mut states = std::mem::take(&mut s.paused);
        states.sort_by_key(|(i, _)| *i);
        Some(states.into_iter().map(|(_, st)| st).collect())
    }
}

/// Everything KVM holds for one vCPU that a snapshot must carry.
#[derive(Clone)]
pub struct VcpuState {
    /// General registers.
    pub regs: kvm_regs,
    /// Segment and control registers.
    pub sregs: kvm_sregs,
    /// x87/SSE state (also inside xsave; kept for hosts without xsave).
    pub fpu: kvm_fpu,
    /// Local APIC registers.
    pub lapic: kvm_lapic_state,
    /// Runnable / halted / waiting for SIPI.
    pub mp_state: kvm_mp_state,
    /// Pending exceptions, interrupts, NMIs.
    pub events: kvm_vcpu_events,
    /// Extended control registers.
    pub xcrs: kvm_xcrs,
    /// Debug registers.
    pub debugregs: kvm_debugregs,
    /// Legacy 4 KiB xsave area.
    pub xsave: Vec<u32>,
    /// (index, value) pairs.
    pub msrs: Vec<(u32, u64)>,
}

impl VcpuState {
    /// Reads the state out of KVM (the vCPU must not be running).
    pub fn save(fd: &VcpuFd, msr_indices: &[u32]) -> Result<Self, kvm_ioctls::Error> {
        let mp_state = fd.get_mp_state()?;
        let regs = fd.get_regs()?;
        let sregs = fd.get_sregs()?;
        let fpu = fd.get_fpu()?;
        let xsave = fd.get_xsave()?.region.to_vec();
        let xcrs = fd.get_xcrs()?;
        let debugregs = fd.get_debug_regs()?;
        let lapic = fd.get_lapic()?;
        let events = fd.get_vcpu_events()?;
        let msrs = read_msrs(fd, msr_indices)?;
        Ok(VcpuState {
            regs,
            sregs,
            fpu,
            lapic,
            mp_state,
            events,
            xcrs,
            debugregs,
            xsave,
            msrs,
        })
    }

    /// Loads the state into a fresh vCPU, in the order KVM needs (Firecracker's order).
    pub fn restore(&self, fd: &VcpuFd) -> Result<(), kvm_ioctls::Error> {
        fd.set_mp_state(self.mp_state)?;
        fd.set_regs(&self.regs)?;
        fd.set_sregs(&self.sregs)?;
        fd.set_fpu(&self.fpu)?;
        let mut xsave = kvm_xsave::default();
        for (dst, src) in xsave.region.iter_mut().zip(&self.xsave) {
            *dst = *src;
        }
        // SAFETY: a legacy 4 KiB kvm_xsave with no FAM extension, as KVM_SET_XSAVE reads.
        unsafe { fd.set_xsave(&xsave)? };
        fd.set_xcrs(&self.xcrs)?;
        fd.set_debug_regs(&self.debugregs)?;
        fd.set_lapic(&self.lapic)?;
        write_msrs(fd, &self.msrs)?;
        fd.set_vcpu_events(&self.events)?;
        Ok(())
    }

    /// Encodes into a snapshot.
    pub fn encode(&self, w: &mut StateWriter) {
        w.pod(&self.regs);
        w.pod(&self.sregs);
        w.pod(&self.fpu);
        w.pod(&self.lapic);
        w.pod(&self.mp_state);
        w.pod(&self.events);
        w.pod(&self.xcrs);
        w.pod(&self.debugregs);
        w.u64(self.xsave.len() as u64);
        for word in &self.xsave {
            w.u32(*word);
        }
        w.u64(self.msrs.len() as u64);
        for (index, value) in &self.msrs {
            w.u32(*index);
            w.u64(*value);
        }
    }

    /// Decodes from a snapshot.
    pub fn decode(r: &mut StateReader<'_>) -> Result<Self, CodecError> {
        let regs = r.pod()?;
        let sregs = r.pod()?;
        let fpu = r.pod()?;
        let lapic = r.pod()?;
        let mp_state = r.pod()?;
        let events = r.pod()?;
        let xcrs = r.pod()?;
        let debugregs = r.pod()?;
        let xsave_len = r.u64()?;
        if xsave_len > 1024 {
            return Err(CodecError::Invalid("xsave length"));
        }
        let xsave = (0..xsave_len).map(|_| r.u32()).collect::<Result<_, _>>()?;
        let msr_count = r.u64()?;
        if msr_count > 1024 {
            return Err(CodecError::Invalid("msr count"));
        }
        let msrs = (0..msr_count)
            .map(|_| Ok((r.u32()?, r.u64()?)))
            .collect::<Result<_, _>>()?;
        Ok(VcpuState {
            regs,
            sregs,
            fpu,
            lapic,
            mp_state,
            events,
            xcrs,
            debugregs,
            xsave,
            msrs,
        })
    }
}

/// Reads `indices`, skipping any the host refuses (KVM stops at the first failure).
fn read_msrs(fd: &VcpuFd, indices: &[u32]) -> Result<Vec<(u32, u64)>, kvm_ioctls::Error> {
    let mut out = Vec::new();
    let mut rest = indices;
    while !rest.is_empty() {
        let entries: Vec<kvm_msr_entry> = rest
            .iter()
            .map(|&index| kvm_msr_entry {
                index,
                ..Default::default()
            })
            .collect();
        let mut msrs =
            Msrs::from_entries(&entries).map_err(|_| kvm_ioctls::Error::new(libc::E2BIG))?;
        let read = fd.get_msrs(&mut msrs)?;
        out.extend(msrs.as_slice()[..read].iter().map(|e| (e.index, e.data)));
        // Skip the one that failed and carry on.
        rest = rest.get(read + 1..).unwrap_or(&[]);
    }
    Ok(out)
}

/// Writes MSRs, failing if KVM takes fewer than given.
pub fn write_msrs(fd: &VcpuFd, msrs: &[(u32, u64)]) -> Result<(), kvm_ioctls::Error> {
    let entries: Vec<kvm_msr_entry> = msrs
        .iter()
        .map(|&(index, data)| kvm_msr_entry {
            index,
            data,
            ..Default::default()
        })
        .collect();
    let kvm_msrs = Msrs::from_entries(&entries).map_err(|_| kvm_ioctls::Error::new(libc::E2BIG))?;
    let written = fd.set_msrs(&kvm_msrs)?;
    if written != msrs.len() {
        return Err(kvm_ioctls::Error::new(libc::EINVAL));
    }
    Ok(())
}

/// One vCPU and what it needs to run.
pub struct Vcpu {
    /// Index (also the APIC id).
    pub index: u8,
    /// KVM handle.
    pub fd: VcpuFd,
    /// Port I/O bus.
    pub pio: Arc<Bus>,
    /// MMIO bus.
    pub mmio: Arc<Bus>,
    /// Where exits are reported.
    pub exit: Arc<ExitSignal>,
    /// Owner's commands.
    pub control: Arc<VcpuControl>,
    /// MSRs to save on pause.
    pub msr_indices: Arc<Vec<u32>>,
}

impl Vcpu {
    /// The thread body: runs until told to stop or the guest ends the VM.
    pub fn run_loop(mut self) {
        let mut saved_epoch = 0;
        loop {
            match self.control.command() {
                (Command::Stop, _) => return,
                (Command::Pause, epoch) => {
                    if epoch != saved_epoch {
                        saved_epoch = epoch;
                        let state =
                            VcpuState::save(&self.fd, &self.msr_indices).map_err(|e| e.to_string());
                        self.control.report(self.index, state);
                    }
                    self.control.wait_while_paused(epoch);
                    continue;
                }
                (Command::Run, _) => {}
            }
            if let Some(exit) = self.run_once() {
                self.exit.raise(exit);
                // The owner will stop us; park so a dead guest does not spin.
                self.control.set_if_run(Command::Pause);
            }
        }
    }

    /// One KVM_RUN; `Some` when the VM must end.
    fn run_once(&mut self) -> Option<VmExit> {
        let index = self.index;
        let failed = |reason: String| {
            Some(VmExit::VcpuFailed {
                vcpu: index,
                reason,
            })
        };
        match self.fd.run() {
            Ok(VcpuExit::IoIn(port, data)) => {
                if !self.pio.read(u64::from(port), data) {
                    // Unclaimed ports float high, as on real hardware.
                    data.fill(0xff);
                }
                None
            }
            Ok(VcpuExit::IoOut(port, data)) => {
                self.pio.write(u64::from(port), data);
                None
            }
            Ok(VcpuExit::MmioRead(addr, data)) => {
                if !self.mmio.read(addr, data) {
                    data.fill(0);
                }
                None
            }
            Ok(VcpuExit::MmioWrite(addr, data)) => {
                self.mmio.write(addr, data);
                None
            }
            Ok(VcpuExit::Hlt) | Ok(VcpuExit::Shutdown) => Some(VmExit::GuestShutdown),
            Ok(VcpuExit::SystemEvent(SYSTEM_EVENT_RESET, _)) => Some(VmExit::GuestReset),
            Ok(VcpuExit::SystemEvent(SYSTEM_EVENT_SHUTDOWN, _)) => Some(VmExit::GuestShutdown),
            Ok(VcpuExit::FailEntry(reason, cpu)) => {
                failed(format!("entry failed: reason {reason:#x} on cpu {cpu}"))
            }
            Ok(VcpuExit::InternalError) => failed("KVM internal error (emulation failure)".into()),
            Ok(VcpuExit::Intr) | Ok(VcpuExit::IrqWindowOpen) => None,
            Ok(other) => failed(format!("unexpected exit {other:?}")),
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => None,
            Err(e) => failed(format!("KVM_RUN: {e}")),
        }
    }
}

impl VcpuControl {
    /// Sets `command` unless the owner already asked for something other than Run.
    fn set_if_run(&self, command: Command) {
        let mut s = self.lock();
        if s.command.unwrap_or(Command::Run) == Command::Run {
            // A vCPU that parks itself reports no state; bumping the epoch would make
            // it save one, so only the command changes.
            s.command = Some(command);
            self.changed.notify_all();
        }
    }
}
