//! The default seccomp profile: every syscall allowed except those a
//! container has no business making, which fail with EPERM.
//!
//! Docker's profile is an allowlist of ~350 syscalls; this denylist keeps
//! the same dangerous ones out (kernel modules, kexec, new mount API, bpf,
//! perf, keyrings, clock setting, reboot, swap, accounting, cross-process
//! memory access) while compiling to a much smaller filter, which matters
//! for container start latency. Syscalls libseccomp does not know on the
//! host are skipped by the runtime.

use oci_spec::OciSpecError;
use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompBuilder, LinuxSyscallBuilder,
};

/// Syscalls refused with EPERM.
pub const DENIED: &[&str] = &[
    // kernel modules and replacing the kernel
    "init_module",
    "finit_module",
    "delete_module",
    "create_module",
    "query_module",
    "get_kernel_syms",
    "kexec_load",
    "kexec_file_load",
    // the machine itself
    "reboot",
    "swapon",
    "swapoff",
    "acct",
    "syslog",
    "iopl",
    "ioperm",
    "settimeofday",
    "clock_settime",
    "clock_adjtime",
    "adjtimex",
    "stime",
    // mounting (CAP_SYS_ADMIN is dropped too; belt and braces)
    "mount",
    "umount",
    "umount2",
    "pivot_root",
    "open_tree",
    "move_mount",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "mount_setattr",
    // tracing, introspection and other processes' memory
    "bpf",
    "perf_event_open",
    "process_vm_readv",
    "process_vm_writev",
    "kcmp",
    "lookup_dcookie",
    "fanotify_init",
    "name_to_handle_at",
    "open_by_handle_at",
    // keyrings are not namespaced
    "add_key",
    "request_key",
    "keyctl",
    // obsolete or NUMA-invasive
    "uselib",
    "ustat",
    "sysfs",
    "_sysctl",
    "nfsservctl",
    "quotactl",
    "quotactl_fd",
    "move_pages",
    "migrate_pages",
    "userfaultfd",
    "vm86",
    "vm86old",
    // namespace escape hatches (CAP_SYS_ADMIN-gated on the host, but not
    // inside a user namespace)
    "setns",
    "unshare",
    // io_uring bypasses seccomp for the operations it performs
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
];

/// EPERM, as Docker answers.
const EPERM: u32 = 1;

/// Builds the default profile.
pub fn default_profile() -> Result<LinuxSeccomp, OciSpecError> {
    let denied = LinuxSyscallBuilder::default()
        .names(DENIED.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .action(LinuxSeccompAction::ScmpActErrno)
        .errno_ret(EPERM)
        .build()?;
    LinuxSeccompBuilder::default()
        .default_action(LinuxSeccompAction::ScmpActAllow)
        .architectures(vec![
            Arch::ScmpArchX86_64,
            Arch::ScmpArchX86,
            Arch::ScmpArchX32,
        ])
        .syscalls(vec![denied])
        .build()
}
