//! Drover's microVM monitor (the `kvm` engine): validated config, a linear builder that
//! makes every KVM call, emulated devices on PIO/MMIO buses, and snapshot/restore.

pub mod arch;
