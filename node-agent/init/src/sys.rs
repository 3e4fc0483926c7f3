//! The system calls init needs that std does not wrap, declared against
//! glibc (init has no crates: see `main.rs`). Each returns a message
//! naming what failed.

use std::ffi::{CString, c_char, c_int, c_long, c_ulong, c_void};
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;

unsafe extern "C" {
    fn mount(
        src: *const c_char,
        target: *const c_char,
        fstype: *const c_char,
        flags: c_ulong,
        data: *const c_void,
    ) -> c_int;
    fn syscall(number: c_long, ...) -> c_long;
    fn socket(domain: c_int, kind: c_int, protocol: c_int) -> c_int;
    fn ioctl(fd: c_int, request: c_ulong, ...) -> c_int;
    fn close(fd: c_int) -> c_int;
    fn sethostname(name: *const c_char, len: usize) -> c_int;
    fn kill(pid: c_int, sig: c_int) -> c_int;
    fn waitpid(pid: c_int, status: *mut c_int, options: c_int) -> c_int;
    #[link_name = "sync"]
    fn libc_sync();
    #[link_name = "reboot"]
    fn libc_reboot(cmd: c_int) -> c_int;
    fn tcgetattr(fd: c_int, t: *mut Termios) -> c_int;
    fn tcsetattr(fd: c_int, action: c_int, t: *const Termios) -> c_int;
}

const SYS_FINIT_MODULE: c_long = 313;
const EEXIST: i32 = 17;
const EINTR: i32 = 4;
const AF_INET: c_int = 2;
const SOCK_DGRAM: c_int = 2;
const SIOCGIFFLAGS: c_ulong = 0x8913;
const SIOCSIFFLAGS: c_ulong = 0x8914;
const SIOCSIFADDR: c_ulong = 0x8916;
const SIOCSIFNETMASK: c_ulong = 0x891c;
const SIOCADDRT: c_ulong = 0x890b;
const SIOCSIFHWADDR: c_ulong = 0x8924;
const ARPHRD_ETHER: u16 = 1;
const IFF_UP: i16 = 1;
const RTF_UP: u16 = 1;
const RTF_GATEWAY: u16 = 2;
const SIGTERM: c_int = 15;
const RB_AUTOBOOT: c_int = 0x0123_4567;
const ECHO: u32 = 0o10;

fn os_error(what: &str) -> String {
    format!("{what}: {}", std::io::Error::last_os_error())
}

fn cstr(s: &str) -> Result<CString, String> {
    CString::new(s).map_err(|_| format!("{s:?} contains NUL"))
}

/// /proc, /sys and a devtmpfs /dev (the image may lack the directories).
pub fn mount_kernel_filesystems() -> Result<(), String> {
    for (fstype, target) in [("proc", "/proc"), ("sysfs", "/sys"), ("devtmpfs", "/dev")] {
        let _ = std::fs::create_dir_all(target);
        let (src, dst, ty) = (cstr(fstype)?, cstr(target)?, cstr(fstype)?);
        // SAFETY: valid NUL-terminated strings; no data argument.
        let rc = unsafe { mount(src.as_ptr(), dst.as_ptr(), ty.as_ptr(), 0, std::ptr::null()) };
        // devtmpfs may be mounted already (CONFIG_DEVTMPFS_MOUNT).
        if rc != 0 && std::io::Error::last_os_error().raw_os_error() != Some(16) {
            return Err(os_error(&format!("mounting {fstype} on {target}")));
        }
    }
    Ok(())
}

/// Loads one kernel module; one built in already (EEXIST) is fine.
pub fn load_module(path: &str) -> Result<(), String> {
    let file = std::fs::File::open(path).map_err(|e| format!("opening {path}: {e}"))?;
    let params = cstr("")?;
    // SAFETY: finit_module(fd, params, flags) with a valid fd and string.
    let rc = unsafe {
        syscall(
            SYS_FINIT_MODULE,
            file.as_raw_fd() as c_long,
            params.as_ptr(),
            0 as c_long,
        )
    };
    if rc != 0 && std::io::Error::last_os_error().raw_os_error() != Some(EEXIST) {
        return Err(os_error(&format!("loading module {path}")));
    }
    Ok(())
}

#[repr(C)]
#[derive(Clone, Copy)]
struct SockaddrIn {
    family: u16,
    port: u16,
    addr: [u8; 4],
    zero: [u8; 8],
}

impl SockaddrIn {
    fn new(ip: Ipv4Addr) -> Self {
        SockaddrIn {
            family: AF_INET as u16,
            port: 0,
            addr: ip.octets(),
            zero: [0; 8],
        }
    }
}

#[repr(C)]
union IfreqData {
    addr: SockaddrIn,
    /// `struct sockaddr` with the hardware address in `sa_data`.
    hwaddr: Hwaddr,
    flags: i16,
    pad: [u8; 24],
}

#[repr(C)]
#[derive(Clone, Copy)]
struct Hwaddr {
    family: u16,
    data: [u8; 14],
}

#[repr(C)]
struct Ifreq {
    name: [u8; 16],
    data: IfreqData,
}

#[repr(C)]
struct Rtentry {
    pad1: c_ulong,
    dst: SockaddrIn,
    gateway: SockaddrIn,
    genmask: SockaddrIn,
    flags: u16,
    pad2: i16,
    pad3: c_ulong,
    pad4: *mut c_void,
    metric: i16,
    dev: *mut c_char,
    mtu: c_ulong,
    window: c_ulong,
    irtt: u16,
}

struct Socket(c_int);

impl Socket {
    fn inet() -> Result<Socket, String> {
        // SAFETY: plain socket(2).
        let fd = unsafe { socket(AF_INET, SOCK_DGRAM, 0) };
        if fd < 0 {
            return Err(os_error("opening an inet socket"));
        }
        Ok(Socket(fd))
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        // SAFETY: we own the fd.
        unsafe {
            close(self.0);
        }
    }
}

fn ifreq(name: &str) -> Result<Ifreq, String> {
    let bytes = name.as_bytes();
    if bytes.len() >= 16 {
        return Err(format!("interface name {name:?} too long"));
    }
    let mut r = Ifreq {
        name: [0; 16],
        data: IfreqData { pad: [0; 24] },
    };
    r.name[..bytes.len()].copy_from_slice(bytes);
    Ok(r)
}

/// Gives `name` an address and netmask (if any) and brings it up.
pub fn interface_up(name: &str, address: Option<(Ipv4Addr, Ipv4Addr)>) -> Result<(), String> {
    let s = Socket::inet()?;
    if let Some((ip, mask)) = address {
        for (request, value, what) in [
            (SIOCSIFADDR, ip, "address"),
            (SIOCSIFNETMASK, mask, "netmask"),
        ] {
            let mut r = ifreq(name)?;
            r.data.addr = SockaddrIn::new(value);
            // SAFETY: the request takes a struct ifreq, which r is.
            if unsafe { ioctl(s.0, request, &mut r as *mut Ifreq) } != 0 {
                return Err(os_error(&format!("setting {name} {what} {value}")));
            }
        }
    }
    let mut r = ifreq(name)?;
    // SAFETY: as above.
    if unsafe { ioctl(s.0, SIOCGIFFLAGS, &mut r as *mut Ifreq) } != 0 {
        return Err(os_error(&format!("reading {name} flags")));
    }
    // SAFETY: SIOCGIFFLAGS filled the flags member.
    unsafe { r.data.flags |= IFF_UP };
    // SAFETY: as above.
    if unsafe { ioctl(s.0, SIOCSIFFLAGS, &mut r as *mut Ifreq) } != 0 {
        return Err(os_error(&format!("bringing {name} up")));
    }
    Ok(())
}

/// Sets `name`'s MAC address (virtio-net takes it while up).
pub fn set_mac(name: &str, mac: [u8; 6]) -> Result<(), String> {
    let s = Socket::inet()?;
    let mut r = ifreq(name)?;
    let mut data = [0u8; 14];
    data[..6].copy_from_slice(&mac);
    r.data.hwaddr = Hwaddr {
        family: ARPHRD_ETHER,
        data,
    };
    // SAFETY: SIOCSIFHWADDR takes a struct ifreq, which r is.
    if unsafe { ioctl(s.0, SIOCSIFHWADDR, &mut r as *mut Ifreq) } != 0 {
        return Err(os_error(&format!("setting {name} MAC address")));
    }
    Ok(())
}

/// Routes everything via `gateway`; a route already there is fine
/// (the kernel keeps it across an address change only sometimes).
pub fn ensure_default_route(gateway: Ipv4Addr) -> Result<(), String> {
    match add_default_route(gateway)? {
        Err(e) if e.raw_os_error() != Some(EEXIST) => {
            Err(format!("default route via {gateway}: {e}"))
        }
        _ => Ok(()),
    }
}

/// Routes everything via `gateway`.
pub fn default_route(gateway: Ipv4Addr) -> Result<(), String> {
    add_default_route(gateway)?.map_err(|e| format!("default route via {gateway}: {e}"))
}

/// The outer error is the socket's, the inner one the kernel's answer.
fn add_default_route(gateway: Ipv4Addr) -> Result<std::io::Result<()>, String> {
    let s = Socket::inet()?;
    let mut rt = Rtentry {
        pad1: 0,
        dst: SockaddrIn::new(Ipv4Addr::UNSPECIFIED),
        gateway: SockaddrIn::new(gateway),
        genmask: SockaddrIn::new(Ipv4Addr::UNSPECIFIED),
        flags: RTF_UP | RTF_GATEWAY,
        pad2: 0,
        pad3: 0,
        pad4: std::ptr::null_mut(),
        metric: 0,
        dev: std::ptr::null_mut(),
        mtu: 0,
        window: 0,
        irtt: 0,
    };
    // SAFETY: SIOCADDRT takes a struct rtentry, which rt is.
    if unsafe { ioctl(s.0, SIOCADDRT, &mut rt as *mut Rtentry) } != 0 {
        return Ok(Err(std::io::Error::last_os_error()));
    }
    Ok(Ok(()))
}

pub fn set_hostname(name: &str) -> Result<(), String> {
    // SAFETY: pointer and length of a live byte slice.
    if unsafe { sethostname(name.as_ptr().cast(), name.len()) } != 0 {
        return Err(os_error(&format!("setting host name {name:?}")));
    }
    Ok(())
}

#[repr(C)]
struct Termios {
    iflag: u32,
    oflag: u32,
    cflag: u32,
    lflag: u32,
    line: u8,
    cc: [u8; 32],
    ispeed: u32,
    ospeed: u32,
}

/// Stops the console echoing what the host writes to it (best effort).
pub fn console_no_echo() {
    let mut t = Termios {
        iflag: 0,
        oflag: 0,
        cflag: 0,
        lflag: 0,
        line: 0,
        cc: [0; 32],
        ispeed: 0,
        ospeed: 0,
    };
    // SAFETY: fd 0 and a struct termios of glibc's layout.
    unsafe {
        if tcgetattr(0, &mut t) == 0 {
            t.lflag &= !ECHO;
            tcsetattr(0, 0, &t);
        }
    }
}

/// SIGTERM to `pid`.
pub fn terminate(pid: i32) {
    // SAFETY: kill(2) with integers.
    unsafe {
        kill(pid, SIGTERM);
    }
}

/// Reaps children until `pid` exits; its exit code, 128 + signal if
/// killed.
pub fn reap_until(pid: i32) -> i32 {
    loop {
        let mut status: c_int = 0;
        // SAFETY: waitpid(-1) with a valid status pointer.
        let got = unsafe { waitpid(-1, &mut status, 0) };
        if got < 0 {
            if std::io::Error::last_os_error().raw_os_error() == Some(EINTR) {
                continue;
            }
            return 255;
        }
        if got != pid {
            continue;
        }
        let signal = status & 0x7f;
        if signal == 0 {
            return (status >> 8) & 0xff;
        }
        if signal != 0x7f {
            return 128 + signal;
        }
    }
}

pub fn sync() {
    // SAFETY: no arguments.
    unsafe { libc_sync() }
}

/// Restarts the machine; the monitor runs with "exit on reboot".
pub fn reboot() {
    // SAFETY: reboot(2) with a constant command.
    unsafe {
        libc_reboot(RB_AUTOBOOT);
    }
}
