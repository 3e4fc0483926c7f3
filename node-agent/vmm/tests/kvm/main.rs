//! Monitor tests on the real /dev/kvm with purpose-built test guests (assembled at test
//! time with binutils). Each test prints a SKIPPED line and returns when /dev/kvm,
//! binutils or (for networking) root are missing.

#[macro_use]
mod common;

mod boot;
mod net;
mod seccomp;
mod snapshot;
mod virtio;
