//! Seccomp confinement for a monitor process: after `build` has opened every file and
//! started every thread, only the system calls a running VM needs remain (Firecracker's
//! jailer installs the same kind of allowlist). Anything else kills the process, so a
//! guest that subverts the monitor still cannot reach the rest of the kernel API.

use std::io;

/// `AUDIT_ARCH_X86_64`.
const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
/// Offsets into `struct seccomp_data`.
const DATA_NR: u32 = 0;
const DATA_ARCH: u32 = 4;
/// BPF opcodes (linux/bpf_common.h).
const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JEQ_K: u16 = 0x15;
const BPF_RET_K: u16 = 0x06;
/// Seccomp return actions.
const RET_ALLOW: u32 = 0x7fff_0000;
const RET_KILL_PROCESS: u32 = 0x8000_0000;
const SECCOMP_SET_MODE_FILTER: libc::c_ulong = 1;
const SECCOMP_FILTER_FLAG_TSYNC: libc::c_ulong = 1;

/// System calls of a running monitor: the vCPU loop (KVM ioctls, signals for kicks),
/// devices (file, tap and eventfd I/O), snapshots (create files, sparse writes, fsync),
/// the allocator, and thread/process exit.
pub fn monitor_allowlist() -> Vec<i64> {
    vec![
        libc::SYS_read,
        libc::SYS_write,
        libc::SYS_pread64,
        libc::SYS_pwrite64,
        libc::SYS_readv,
        libc::SYS_writev,
        libc::SYS_poll,
        libc::SYS_ppoll,
        libc::SYS_ioctl,
        libc::SYS_futex,
        libc::SYS_close,
        // Debug builds of std check an fd is open (F_GETFD) before closing it.
        libc::SYS_fcntl,
        libc::SYS_mmap,
        libc::SYS_munmap,
        libc::SYS_mremap,
        libc::SYS_madvise,
        libc::SYS_mprotect,
        libc::SYS_brk,
        libc::SYS_rt_sigreturn,
        libc::SYS_rt_sigprocmask,
        libc::SYS_sigaltstack,
        libc::SYS_tgkill,
        libc::SYS_gettid,
        libc::SYS_getpid,
        libc::SYS_clock_gettime,
        libc::SYS_clock_nanosleep,
        libc::SYS_nanosleep,
        libc::SYS_sched_yield,
        // glibc asks for the CPU count when it creates a malloc arena for a thread.
        libc::SYS_sched_getaffinity,
        libc::SYS_restart_syscall,
        libc::SYS_getrandom,
        libc::SYS_openat,
        libc::SYS_mkdir,
        libc::SYS_mkdirat,
        libc::SYS_newfstatat,
        libc::SYS_fstat,
        libc::SYS_statx,
        libc::SYS_lseek,
        libc::SYS_ftruncate,
        libc::SYS_fsync,
        libc::SYS_fdatasync,
        libc::SYS_exit,
        libc::SYS_exit_group,
    ]
}

/// Errors installing the filter.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    /// Too many rules for one classic BPF program.
    #[error("{0} allowed system calls do not fit one BPF program")]
    TooLarge(usize),
    /// prctl(PR_SET_NO_NEW_PRIVS) failed.
    #[error("cannot set no_new_privs: {0}")]
    NoNewPrivs(io::Error),
    /// seccomp(SET_MODE_FILTER) failed.
    #[error("cannot install seccomp filter: {0}")]
    Install(io::Error),
}

fn stmt(code: u16, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jeq(k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter {
        code: BPF_JEQ_K,
        jt,
        jf,
        k,
    }
}

/// The classic-BPF program: wrong architecture → kill; listed number → allow; else kill.
pub fn build_program(allowed: &[i64]) -> Result<Vec<libc::sock_filter>, SeccompError> {
    // Each rule jumps over the rest of the list to the final ALLOW; jt is 8 bits.
    if allowed.len() > 250 {
        return Err(SeccompError::TooLarge(allowed.len()));
    }
    let mut prog = vec![
        stmt(BPF_LD_W_ABS, DATA_ARCH),
        jeq(AUDIT_ARCH_X86_64, 1, 0),
        stmt(BPF_RET_K, RET_KILL_PROCESS),
        stmt(BPF_LD_W_ABS, DATA_NR),
    ];
    let n = allowed.len();
    for (i, nr) in allowed.iter().enumerate() {
        // Remaining rules after this one, plus the KILL, sit between us and ALLOW.
        let to_allow = (n - i - 1) + 1;
        prog.push(jeq(*nr as u32, to_allow as u8, 0));
    }
    prog.push(stmt(BPF_RET_K, RET_KILL_PROCESS));
    prog.push(stmt(BPF_RET_K, RET_ALLOW));
    Ok(prog)
}

/// Installs `allowed` on every thread of the process (TSYNC). Irreversible.
pub fn apply(allowed: &[i64]) -> Result<(), SeccompError> {
    let prog = build_program(allowed)?;
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_ptr().cast_mut(),
    };
    // SAFETY: plain prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(SeccompError::NoNewPrivs(io::Error::last_os_error()));
    }
    // SAFETY: fprog points at `prog`, which outlives the call; the kernel copies it.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            SECCOMP_SET_MODE_FILTER,
            SECCOMP_FILTER_FLAG_TSYNC,
            &fprog as *const libc::sock_fprog,
        )
    };
    if rc != 0 {
        return Err(SeccompError::Install(io::Error::last_os_error()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the program the way the kernel would on (arch, nr).
    fn eval(prog: &[libc::sock_filter], arch: u32, nr: u32) -> u32 {
        let (mut pc, mut acc) = (0usize, 0u32);
        loop {
            let ins = prog[pc];
            match ins.code {
                BPF_LD_W_ABS => {
                    acc = if ins.k == DATA_ARCH { arch } else { nr };
                    pc += 1;
                }
                BPF_JEQ_K => pc += 1 + usize::from(if acc == ins.k { ins.jt } else { ins.jf }),
                BPF_RET_K => return ins.k,
                other => panic!("unexpected opcode {other:#x}"),
            }
        }
    }

    #[test]
    fn allows_listed_calls_and_kills_the_rest() {
        let allowed = monitor_allowlist();
        let prog = build_program(&allowed).unwrap();
        for nr in &allowed {
            assert_eq!(
                eval(&prog, AUDIT_ARCH_X86_64, *nr as u32),
                RET_ALLOW,
                "nr {nr}"
            );
        }
        for nr in [
            libc::SYS_execve,
            libc::SYS_clone,
            libc::SYS_socket,
            libc::SYS_ptrace,
            libc::SYS_mount,
        ] {
            assert_eq!(
                eval(&prog, AUDIT_ARCH_X86_64, nr as u32),
                RET_KILL_PROCESS,
                "nr {nr}"
            );
        }
        // x32 or i386 entry points are refused outright.
        assert_eq!(
            eval(&prog, 0x4000_0003, libc::SYS_read as u32),
            RET_KILL_PROCESS
        );
    }

    #[test]
    fn size_limit() {
        assert!(matches!(
            build_program(&vec![0; 300]),
            Err(SeccompError::TooLarge(300))
        ));
        assert_eq!(build_program(&[]).unwrap().len(), 6);
    }
}
