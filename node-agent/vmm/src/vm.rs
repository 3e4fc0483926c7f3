//! A running VM: its vCPU threads, devices and memory, and the owner's controls
//! (wait, stop, snapshot).

use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::{Arc, Mutex, Once};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use kvm_ioctls::VmFd;
use vm_memory::GuestMemoryMmap;
use vmm_sys_util::eventfd::EventFd;
use vmm_sys_util::signal::{Killable, SIGRTMIN, register_signal_handler};

use crate::arch::acpi::MmioDeviceInfo;
use crate::devices::boot_timer::BootTime;
use crate::devices::serial::SerialDevice;
use crate::devices::virtio::mmio::MmioTransport;
use crate::exit::{ExitSignal, VmExit};
use crate::snapshot::{self, SnapshotError};
use crate::vstate::vcpu::{Command, Vcpu, VcpuControl};

/// Devices the owner and snapshots need to reach after boot.
pub struct Devices {
    /// COM1.
    pub serial: Arc<Mutex<SerialDevice>>,
    /// Virtio transports, in slot order (block devices first, then net).
    pub transports: Vec<Arc<Mutex<MmioTransport>>>,
    /// Where each transport sits, as described to the guest.
    pub mmio_infos: Vec<MmioDeviceInfo>,
    /// Boot-timer record.
    pub boot_time: BootTime,
}

/// How often the owner re-kicks vCPUs that have not yet left KVM_RUN.
const KICK_INTERVAL: Duration = Duration::from_micros(200);
/// A vCPU that ignores kicks this long is reported rather than waited on forever.
const PAUSE_TIMEOUT: Duration = Duration::from_secs(5);

fn kick_signal() -> i32 {
    SIGRTMIN()
}

extern "C" fn kick_handler(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // Nothing to do: delivery alone makes KVM_RUN return EINTR.
}

fn install_kick_handler() -> std::io::Result<()> {
    static ONCE: Once = Once::new();
    let mut result = Ok(());
    ONCE.call_once(|| {
        result = register_signal_handler(kick_signal(), kick_handler)
            .map_err(|e| std::io::Error::from_raw_os_error(e.errno()));
    });
    result
}

/// Requests a stop from any thread.
#[derive(Clone, Debug)]
pub struct StopHandle(Arc<ExitSignal>);

impl StopHandle {
    /// Asks the VM to stop; the owner's `wait` then tears it down.
    pub fn stop(&self) {
        self.0.raise(VmExit::Stopped);
    }
}

/// What the builder hands over to start a VM.
pub(crate) struct VmParts {
    pub vm: VmFd,
    pub mem: GuestMemoryMmap,
    pub vcpus: Vec<Vcpu>,
    pub devices: Devices,
    pub exit: Arc<ExitSignal>,
    pub control: Arc<VcpuControl>,
    pub started: Instant,
}

/// A VM whose vCPUs are running.
pub struct RunningVm {
    exit: Arc<ExitSignal>,
    control: Arc<VcpuControl>,
    threads: Vec<JoinHandle<()>>,
    io: Option<(JoinHandle<()>, Arc<EventFd>)>,
    devices: Devices,
    vcpu_count: u8,
    started: Instant,
    // Dropped last: the VM fd and then guest memory must outlive the vCPU threads.
    vm: VmFd,
    mem: GuestMemoryMmap,
}

impl RunningVm {
    pub(crate) fn start(parts: VmParts) -> std::io::Result<Self> {
        let VmParts {
            vm,
            mem,
            vcpus,
            devices,
            exit,
            control,
            started,
        } = parts;
        let vcpu_count = u8::try_from(vcpus.len()).unwrap_or(u8::MAX);
        install_kick_handler()?;
        let mut running = RunningVm {
            exit,
            control,
            threads: Vec::new(),
            io: None,
            devices,
            vcpu_count,
            started,
            vm,
            mem,
        };
        // Each thread reports once its runtime setup (name, signal stack, rseq) is done,
        // so a seccomp filter installed after `build` returns never sees those calls.
        let (started_tx, started_rx) = std::sync::mpsc::channel::<()>();
        let mut spawned = 0;
        for vcpu in vcpus {
            let started = started_tx.clone();
            let handle = std::thread::Builder::new()
                .name(format!("vcpu{}", vcpu.index))
                .spawn(move || {
                    let _ = started.send(());
                    vcpu.run_loop()
                })?;
            running.threads.push(handle);
            spawned += 1;
        }
        running.io = spawn_io_thread(&running.devices.transports, started_tx)?;
        spawned += usize::from(running.io.is_some());
        for _ in 0..spawned {
            // A thread that died before reporting dropped its sender; stop waiting then.
            if started_rx.recv().is_err() {
                break;
            }
        }
        Ok(running)
    }

    /// Time since the VM was created.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// How long the guest took to signal the boot timer, once it has.
    pub fn boot_time(&self) -> Option<Duration> {
        self.devices.boot_time.get()
    }

    /// Guest memory (tests inspect it; the node agent never needs to).
    pub fn memory(&self) -> &GuestMemoryMmap {
        &self.mem
    }

    /// A handle another thread (e.g. a SIGTERM handler loop) uses to stop the VM, which
    /// makes `wait` return `VmExit::Stopped`.
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle(self.exit.clone())
    }

    /// The exit reason if the VM has already ended.
    pub fn try_exit(&self) -> Option<VmExit> {
        self.exit.get()
    }

    /// Waits up to `timeout` for the guest to end the VM.
    pub fn wait_timeout(&self, timeout: Duration) -> Option<VmExit> {
        self.exit.wait_timeout(timeout)
    }

    /// Waits for the guest to end the VM, then tears it down.
    pub fn wait(mut self) -> VmExit {
        let exit = self.exit.wait();
        self.shutdown();
        exit
    }

    /// Stops the VM now (or reports how it had already ended).
    pub fn stop(mut self) -> VmExit {
        self.exit.raise(VmExit::Stopped);
        self.shutdown();
        self.exit.get().unwrap_or(VmExit::Stopped)
    }

    fn kick_all(&self) {
        for t in &self.threads {
            if !t.is_finished() {
                // ESRCH just means the thread already left.
                let _ = t.kill(kick_signal());
            }
        }
    }

    fn shutdown(&mut self) {
        self.control.set(Command::Stop);
        while self.threads.iter().any(|t| !t.is_finished()) {
            self.kick_all();
            std::thread::sleep(KICK_INTERVAL);
        }
        for t in self.threads.drain(..) {
            // A panicked vCPU thread has nothing left to clean up.
            let _ = t.join();
        }
        if let Some((handle, stop)) = self.io.take() {
            let _ = stop.write(1);
            let _ = handle.join();
        }
    }

    /// Pauses every vCPU, writes guest memory and all VM/vCPU/device state into `dir`,
    /// then resumes the guest (unless `resume` is false, when the VM stays paused until
    /// dropped or stopped).
    pub fn snapshot(&self, dir: &Path, resume: bool) -> Result<(), SnapshotError> {
        if self.exit.get().is_some() {
            return Err(SnapshotError::NotRunning);
        }
        self.control.set(Command::Pause);
        let deadline = Instant::now() + PAUSE_TIMEOUT;
        let states = loop {
            if let Some(states) = self.control.take_states(usize::from(self.vcpu_count)) {
                break states;
            }
            if Instant::now() > deadline {
                self.control.set(Command::Run);
                return Err(SnapshotError::PauseTimeout);
            }
            self.kick_all();
            std::thread::sleep(KICK_INTERVAL);
        };
        let result = snapshot::write(dir, &self.vm, &self.mem, &self.devices, states);
        if resume {
            self.control.set(Command::Run);
        }
        result
    }
}

impl Drop for RunningVm {
    fn drop(&mut self) {
        if !self.threads.is_empty() || self.io.is_some() {
            self.exit.raise(VmExit::Stopped);
            self.shutdown();
        }
    }
}

/// Polls device backends (tap fds) and lets devices move host data into the guest.
fn spawn_io_thread(
    transports: &[Arc<Mutex<MmioTransport>>],
    started: std::sync::mpsc::Sender<()>,
) -> std::io::Result<Option<(JoinHandle<()>, Arc<EventFd>)>> {
    let has_backend = transports
        .iter()
        .any(|t| t.lock().map(|t| t.has_backend()).unwrap_or(false));
    if !has_backend {
        return Ok(None);
    }
    let stop = Arc::new(EventFd::new(libc::EFD_NONBLOCK)?);
    let stop_thread = stop.clone();
    let transports: Vec<_> = transports.to_vec();
    let handle = std::thread::Builder::new()
        .name("vmm-io".into())
        .spawn(move || {
            let _ = started.send(());
            io_loop(&transports, &stop_thread)
        })?;
    Ok(Some((handle, stop)))
}

fn io_loop(transports: &[Arc<Mutex<MmioTransport>>], stop: &EventFd) {
    loop {
        let mut fds = vec![libc::pollfd {
            fd: stop.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        let mut owners = Vec::new();
        let mut idle_backend = false;
        for (i, t) in transports.iter().enumerate() {
            let Ok(t) = t.lock() else { continue };
            match t.backend_poll_fd() {
                Some(fd) => {
                    fds.push(libc::pollfd {
                        fd,
                        events: libc::POLLIN,
                        revents: 0,
                    });
                    owners.push(i);
                }
                None => idle_backend |= t.has_backend(),
            }
        }
        // A device not polled (inactive or out of RX buffers) is retried on a short timer
        // rather than making the vCPU thread wake us.
        let timeout = if idle_backend { 20 } else { -1 };
        // SAFETY: fds is a valid, initialised pollfd array for the duration of the call.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
        if n < 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return;
        }
        if fds[0].revents != 0 {
            return;
        }
        for (pfd, &i) in fds[1..].iter().zip(&owners) {
            if pfd.revents != 0
                && let Ok(mut t) = transports[i].lock()
            {
                t.backend_ready();
            }
        }
        if idle_backend {
            for t in transports {
                if let Ok(mut t) = t.lock() {
                    t.backend_ready();
                }
            }
        }
    }
}
