//! KVM-facing state: guest memory and vCPUs.

pub mod memory;
pub mod vcpu;
pub mod vcpu_state;
