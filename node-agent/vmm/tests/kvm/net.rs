//! virtio-net over a real tap on /dev/kvm: the host sends a frame into the tap, the test
//! guest receives it on its RX queue, answers on its TX queue, and the host sees the
//! answer on the tap. Needs root (TUNSETIFF, raw sockets); skips with a reason otherwise.

use crate::common;

use std::ffi::CString;
use std::time::{Duration, Instant};

use drover_vmm::{NetConfig, SerialOutput, VmConfig, VmExit};

const ETHERTYPE: u16 = 0x88b5; // IEEE local experimental: nothing else on the tap uses it.
const GUEST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];

fn net_guest() -> String {
    format!(
        r#"
.code64
.globl _start
_start:
    mov $0xd0001000, %ebx
    cmpl $1, 0x008(%rbx)            /* network card */
    jne fail
    movl $0, 0x070(%rbx)
    movl $3, 0x070(%rbx)
    movl $1, 0x024(%rbx)
    movl $1, 0x020(%rbx)            /* VIRTIO_F_VERSION_1 only */
    movl $0, 0x024(%rbx)
    movl $0, 0x020(%rbx)
    movl $11, 0x070(%rbx)
    testl $8, 0x070(%rbx)
    jz fail
    /* queue 0 (RX): desc 0x300000 avail 0x301000 used 0x302000 */
    mov $0, %edi
    mov $0x300000, %r8d
    call setup_queue
    /* queue 1 (TX): desc 0x303000 avail 0x304000 used 0x305000 */
    mov $1, %edi
    mov $0x303000, %r8d
    call setup_queue
    movl $15, 0x070(%rbx)           /* DRIVER_OK */

    /* RX descriptor 0: 2048-byte writable buffer at 0x310000. */
    movq $0x310000, 0x300000
    movl $2048, 0x300008
    movw $2, 0x30000c
    xor %r12d, %r12d                /* frames seen */
post_rx:
    movzwl 0x301002, %eax
    mov %eax, %ecx
    and $7, %ecx
    movw $0, 0x301004(,%rcx,2)
    inc %eax
    movw %ax, 0x301002
    movl $0, 0x050(%rbx)            /* notify RX */
    cmp $0, %r12d
    jne wait_rx
    lea ready(%rip), %rsi
    call print
wait_rx:
    movzwl 0x302002, %eax           /* RX used.idx */
    cmp %r12d, %eax
    je wait_rx
    inc %r12d
    cmpw $0xb588, 0x310018          /* ethertype 0x88b5 after 12-byte vnet header */
    jne post_rx
    cmpl $0x474e4950, 0x31001a      /* "PING" */
    jne post_rx
    lea rxok(%rip), %rsi
    call print

    /* TX descriptor 0: our reply frame, read-only. */
    lea txframe(%rip), %rax
    mov %rax, 0x303000
    movl $72, 0x303008
    movw $0, 0x30300c
    movw $0, 0x304004
    movw $1, 0x304002
    movl $1, 0x050(%rbx)            /* notify TX */
    cmpw $1, 0x305002               /* TX used.idx */
    jne fail
    lea txok(%rip), %rsi
    call print
    call reset

/* %edi = queue, %r8 = desc table; avail/used follow at +0x1000/+0x2000; size 8. */
setup_queue:
    movl %edi, 0x030(%rbx)
    movl $8, 0x038(%rbx)
    movl %r8d, 0x080(%rbx)
    movl $0, 0x084(%rbx)
    lea 0x1000(%r8), %eax
    movl %eax, 0x090(%rbx)
    movl $0, 0x094(%rbx)
    lea 0x2000(%r8), %eax
    movl %eax, 0x0a0(%rbx)
    movl $0, 0x0a4(%rbx)
    movl $1, 0x044(%rbx)
    ret

fail:
    lea failmsg(%rip), %rsi
    call print
    call reset

txframe:
    .fill 12, 1, 0                          /* virtio_net_hdr_v1 */
    .byte 0xff,0xff,0xff,0xff,0xff,0xff     /* dst */
    .byte 0x02,0,0,0,0,0x01                 /* src */
    .byte 0x88,0xb5
    .ascii "PONG"
    .fill 42, 1, 0                          /* pad to 60 bytes */
ready: .asciz "ready\n"
rxok: .asciz "rx ok\n"
txok: .asciz "tx ok\n"
failmsg: .asciz "FAIL\n"
{lib}
"#,
        lib = common::GUEST_LIB
    )
}

/// Why this test cannot run here, if it cannot.
fn net_unavailable() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("needs root for TUNSETIFF and raw sockets".into());
    }
    if !std::path::Path::new("/dev/net/tun").exists() {
        return Some("/dev/net/tun missing".into());
    }
    None
}

fn set_link_up(name: &str) -> std::io::Result<()> {
    // SAFETY: plain socket creation.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: ifreq is plain data; zeroed is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(name.as_bytes()) {
        *dst = *src as libc::c_char;
    }
    // SAFETY: fd is a socket and req a valid ifreq for both ioctls.
    let result = unsafe {
        if libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut req) < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            if libc::ioctl(fd, libc::SIOCSIFFLAGS, &req) < 0 {
                Err(std::io::Error::last_os_error())
            } else {
                Ok(())
            }
        }
    };
    // SAFETY: fd is ours.
    unsafe { libc::close(fd) };
    result
}

/// A raw socket on the tap for our ethertype.
struct PacketSocket {
    fd: libc::c_int,
    ifindex: libc::c_int,
}

impl PacketSocket {
    fn open(ifname: &str) -> std::io::Result<Self> {
        let cname = CString::new(ifname).map_err(std::io::Error::other)?;
        // SAFETY: valid C string.
        let ifindex = unsafe { libc::if_nametoindex(cname.as_ptr()) } as libc::c_int;
        if ifindex == 0 {
            return Err(std::io::Error::last_os_error());
        }
        let proto = ETHERTYPE.to_be() as libc::c_int;
        // SAFETY: plain socket creation.
        let fd =
            unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, proto) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let sock = PacketSocket { fd, ifindex };
        let addr = sock.addr([0; 6]);
        // SAFETY: addr is a valid sockaddr_ll of the size passed.
        let rc = unsafe {
            libc::bind(
                fd,
                (&addr as *const libc::sockaddr_ll).cast(),
                size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        if rc < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let tv = libc::timeval {
            tv_sec: 0,
            tv_usec: 100_000,
        };
        // SAFETY: tv is a valid timeval of the size passed.
        unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                size_of::<libc::timeval>() as u32,
            )
        };
        Ok(sock)
    }

    fn addr(&self, mac: [u8; 6]) -> libc::sockaddr_ll {
        // SAFETY: sockaddr_ll is plain data.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = ETHERTYPE.to_be();
        addr.sll_ifindex = self.ifindex;
        addr.sll_halen = 6;
        addr.sll_addr[..6].copy_from_slice(&mac);
        addr
    }

    fn send(&self, frame: &[u8]) -> std::io::Result<()> {
        let addr = self.addr(GUEST_MAC);
        // SAFETY: frame and addr are valid for the lengths passed.
        let n = unsafe {
            libc::sendto(
                self.fd,
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&addr as *const libc::sockaddr_ll).cast(),
                size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        if n < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    fn recv(&self) -> Option<Vec<u8>> {
        let mut buf = vec![0u8; 2048];
        // SAFETY: buf is valid for its length.
        let n = unsafe { libc::recv(self.fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
        usize::try_from(n).ok().map(|n| buf[..n].to_vec())
    }
}

impl Drop for PacketSocket {
    fn drop(&mut self) {
        // SAFETY: fd is ours.
        unsafe { libc::close(self.fd) };
    }
}

#[test]
fn frames_round_trip_between_tap_and_guest() {
    require_kvm!();
    if let Some(reason) = net_unavailable() {
        eprintln!("SKIPPED frames_round_trip_between_tap_and_guest: {reason}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let tap = format!("drvt{}", std::process::id() % 100_000);
    let console = common::Console::default();
    let mut config = VmConfig::new(common::assemble(dir.path(), "net", &net_guest()));
    config.serial = SerialOutput::Writer(console.writer());
    config.net.push(NetConfig {
        tap: tap.clone(),
        mac: GUEST_MAC,
    });
    let vm = drover_vmm::build(&config).unwrap();
    assert!(
        console.wait_for("ready\n", Duration::from_secs(20)),
        "{}",
        console.text()
    );
    // Keep the kernel's own IPv6 chatter off the link; the guest skips stray frames anyway.
    let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{tap}/disable_ipv6"), "1");
    set_link_up(&tap).unwrap();
    let sock = PacketSocket::open(&tap).unwrap();

    let mut ping = vec![0u8; 60];
    ping[..6].copy_from_slice(&GUEST_MAC);
    ping[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x02]);
    ping[12..14].copy_from_slice(&ETHERTYPE.to_be_bytes());
    ping[14..18].copy_from_slice(b"PING");
    sock.send(&ping).unwrap();

    let deadline = Instant::now() + Duration::from_secs(20);
    let mut pong = None;
    while pong.is_none() && Instant::now() < deadline {
        if let Some(frame) = sock.recv()
            && frame.get(14..18) == Some(b"PONG")
        {
            pong = Some(frame);
        }
    }
    assert_eq!(
        vm.wait_timeout(Duration::from_secs(20)),
        Some(VmExit::GuestReset),
        "{}",
        console.text()
    );
    drop(vm);
    assert_eq!(console.text(), "ready\nrx ok\ntx ok\n");
    let pong = pong.expect("host saw the guest's reply on the tap");
    assert_eq!(&pong[6..12], &GUEST_MAC);
    // The VM owned the only fd: the tap is gone with it. Another test in this
    // process may fork (seccomp child) while the fd is open and hold a copy
    // briefly, so wait for it with a deadline.
    let cname = CString::new(tap).unwrap();
    let gone_by = Instant::now() + Duration::from_secs(10);
    // SAFETY: valid C string.
    while unsafe { libc::if_nametoindex(cname.as_ptr()) } != 0 && Instant::now() < gone_by {
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: valid C string.
    assert_eq!(
        unsafe { libc::if_nametoindex(cname.as_ptr()) },
        0,
        "tap removed with the VM"
    );
}
