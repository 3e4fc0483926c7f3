//! vCPU threads: the KVM_RUN loop dispatching port and MMIO exits to the buses, and the
//! pause/save/stop protocol the VM owner drives.

use std::sync::{Arc, Condvar, Mutex, PoisonError};

use kvm_ioctls::{VcpuExit, VcpuFd};

pub use super::vcpu_state::{VcpuState, write_msrs};
use crate::devices::bus::Bus;
use crate::exit::{ExitSignal, VmExit};

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
