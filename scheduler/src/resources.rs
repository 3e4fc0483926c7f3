//! The schedulable resources (cpu, memory, pod count) as plain integers.

use drover_proto::types::{Node, Pod};

/// Amounts of the resources the scheduler accounts: cpu in millicores, memory in bytes, pods.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resources {
    pub milli_cpu: i64,
    pub memory: i64,
    pub pods: i64,
}

/// Requests Kubernetes assumes for scoring when a pod requests nothing, so
/// that best-effort pods still spread instead of piling on one node.
pub const DEFAULT_MILLI_CPU_REQUEST: i64 = 100;
pub const DEFAULT_MEMORY_REQUEST: i64 = 200 * 1024 * 1024;

impl Resources {
    /// What `pod` requests: the sum of its containers' effective requests, plus one pod slot.
    pub fn of_pod(pod: &Pod) -> Resources {
        Resources {
            milli_cpu: pod.total_request("cpu"),
            memory: pod.total_request("memory"),
            pods: 1,
        }
    }

    /// What `node` offers to pods.
    pub fn allocatable(node: &Node) -> Resources {
        Resources {
            milli_cpu: node.allocatable("cpu"),
            memory: node.allocatable("memory"),
            pods: node.allocatable("pods"),
        }
    }

    /// The requests used for scoring, with zero cpu/memory replaced by defaults.
    pub fn non_zero(self) -> Resources {
        Resources {
            milli_cpu: if self.milli_cpu == 0 {
                DEFAULT_MILLI_CPU_REQUEST
            } else {
                self.milli_cpu
            },
            memory: if self.memory == 0 {
                DEFAULT_MEMORY_REQUEST
            } else {
                self.memory
            },
            pods: self.pods,
        }
    }

    pub fn add(&mut self, other: Resources) {
        self.milli_cpu = self.milli_cpu.saturating_add(other.milli_cpu);
        self.memory = self.memory.saturating_add(other.memory);
        self.pods = self.pods.saturating_add(other.pods);
    }

    pub fn sub(&mut self, other: Resources) {
        self.milli_cpu = self.milli_cpu.saturating_sub(other.milli_cpu);
        self.memory = self.memory.saturating_sub(other.memory);
        self.pods = self.pods.saturating_sub(other.pods);
    }
}
