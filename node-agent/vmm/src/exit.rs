//! Why a VM stopped, and the one-shot signal that carries the first reason to the owner.

use std::sync::{Condvar, Mutex, PoisonError};
use std::time::Duration;

/// How a VM run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VmExit {
    /// The guest asked for a reset through the i8042 (Linux `reboot=k`): a clean stop.
    GuestReset,
    /// The guest triple-faulted or otherwise shut the vCPU down.
    GuestShutdown,
    /// The owner stopped the VM.
    Stopped,
    /// A vCPU failed in a way the guest cannot recover from.
    VcpuFailed {
        /// vCPU index.
        vcpu: u8,
        /// What happened.
        reason: String,
    },
}

/// First-writer-wins exit signal shared by vCPUs, devices and the owner.
#[derive(Debug, Default)]
pub struct ExitSignal {
    reason: Mutex<Option<VmExit>>,
    raised: Condvar,
}

impl ExitSignal {
    /// Records `exit` unless another reason came first.
    pub fn raise(&self, exit: VmExit) {
        let mut reason = self.reason.lock().unwrap_or_else(PoisonError::into_inner);
        if reason.is_none() {
            *reason = Some(exit);
            self.raised.notify_all();
        }
    }

    /// The reason, if any was raised.
    pub fn get(&self) -> Option<VmExit> {
        self.reason
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Blocks until a reason is raised or `timeout` passes.
    pub fn wait_timeout(&self, timeout: Duration) -> Option<VmExit> {
        let guard = self.reason.lock().unwrap_or_else(PoisonError::into_inner);
        let (guard, _) = self
            .raised
            .wait_timeout_while(guard, timeout, |r| r.is_none())
            .unwrap_or_else(PoisonError::into_inner);
        guard.clone()
    }

    /// Blocks until a reason is raised.
    pub fn wait(&self) -> VmExit {
        let guard = self.reason.lock().unwrap_or_else(PoisonError::into_inner);
        let guard = self
            .raised
            .wait_while(guard, |r| r.is_none())
            .unwrap_or_else(PoisonError::into_inner);
        guard.clone().unwrap_or(VmExit::Stopped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_reason_wins() {
        let s = ExitSignal::default();
        assert_eq!(s.wait_timeout(Duration::from_millis(1)), None);
        s.raise(VmExit::GuestReset);
        s.raise(VmExit::Stopped);
        assert_eq!(s.wait(), VmExit::GuestReset);
    }
}
