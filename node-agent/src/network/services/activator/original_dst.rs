//! A DNATed connection's destination before the NAT (`SO_ORIGINAL_DST`,
//! from conntrack): how one activator port serves every held service.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::AsRawFd;

/// The address the client connected to, before this node's DNAT.
pub fn original_dst(conn: &impl AsRawFd) -> std::io::Result<SocketAddrV4> {
    // SAFETY: a zeroed sockaddr_in is valid; getsockopt writes at most
    // `len` bytes into it and the fd is open for the duration of the call.
    let mut addr: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    let rc = unsafe {
        libc::getsockopt(
            conn.as_raw_fd(),
            libc::SOL_IP,
            libc::SO_ORIGINAL_DST,
            (&raw mut addr).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(SocketAddrV4::new(
        Ipv4Addr::from(u32::from_be(addr.sin_addr.s_addr)),
        u16::from_be(addr.sin_port),
    ))
}
