//! Kernel receive timestamps (`SO_TIMESTAMPNS`): turning them on for a socket (`setsockopt`),
//! reading with `recvmsg` to get the `SCM_TIMESTAMPNS` of the bytes read, and [`now_us`], the
//! wall clock they are on, which latency marks are written with.

use anyhow::{Context, Result};
use tokio::net::TcpStream;

/// Wall-clock microseconds: the clock of the kernel's receive timestamps, so marks and arrivals
/// compare (one machine, one clock).
pub fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// Asks the kernel to timestamp what arrives on `s` (`SO_TIMESTAMPNS`, wall clock).
pub fn arrival_stamps(s: &TcpStream) -> Result<()> {
    use std::os::fd::AsRawFd;
    timestamp_ns(s.as_raw_fd()).context("SO_TIMESTAMPNS")
}

/// `setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, 1)`.
fn timestamp_ns(fd: libc::c_int) -> std::io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: `fd` is a socket its caller keeps open across the call; the option value is a
    // c_int that lives across it and its size is passed.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Reads into `buf` like `read`, and returns the kernel's receive time (wall-clock
/// microseconds) of the latest bytes read, from the `SCM_TIMESTAMPNS` control message. Not
/// `AsyncRead`: tokio has no `recvmsg` for TCP, so this waits for readiness and calls it.
pub async fn read_stamped(s: &TcpStream, buf: &mut [u8]) -> std::io::Result<(usize, Option<u64>)> {
    use std::os::fd::AsRawFd;
    loop {
        s.readable().await?;
        match s.try_io(tokio::io::Interest::READABLE, || {
            recv_stamped(s.as_raw_fd(), buf)
        }) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            r => return r,
        }
    }
}

fn recv_stamped(fd: libc::c_int, buf: &mut [u8]) -> std::io::Result<(usize, Option<u64>)> {
    // Room for one cmsghdr and a timespec, u64-aligned as cmsg data must be.
    let mut control = [0u64; 8];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: msghdr is a plain C struct for which all-zero is a valid (empty) value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: `msg` points at `iov` (which covers `buf`, exclusively borrowed) and at `control`,
    // all alive for the call; the kernel writes at most the lengths given.
    let n = unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_DONTWAIT) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut at = None;
    // SAFETY: the CMSG_* macros walk the control buffer the kernel just filled, bounded by
    // `msg_controllen` as it set it; a timespec is read (unaligned-safe) only from a message of
    // the matching level, type and length.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            let h = &*c;
            if h.cmsg_level == libc::SOL_SOCKET
                && h.cmsg_type == libc::SO_TIMESTAMPNS
                && h.cmsg_len as usize
                    >= libc::CMSG_LEN(std::mem::size_of::<libc::timespec>() as u32) as usize
            {
                let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                at = Some(ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1000);
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    Ok((n as usize, at))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;
    use tokio::io::AsyncWriteExt;

    /// The control-message walk, on a datagram socket (whose receive timestamps every Linux
    /// kernel fills in): the bytes, and a time between the send and the read.
    #[test]
    fn recvmsg_finds_the_receive_time() {
        let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        timestamp_ns(rx.as_raw_fd()).unwrap();
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let before = now_us();
        tx.send_to(b"hello", rx.local_addr().unwrap()).unwrap();
        // recv_stamped does not wait (MSG_DONTWAIT): a blocking peek does.
        rx.peek(&mut [0u8; 1]).unwrap();
        let mut buf = [0u8; 16];
        let (n, at) = recv_stamped(rx.as_raw_fd(), &mut buf).unwrap();
        let after = now_us();
        assert_eq!(&buf[..n], b"hello");
        let at = at.expect("a receive timestamp");
        // Microsecond truncation on both clocks: allow one either side.
        assert!(before <= at + 1 && at <= after + 1, "{before} {at} {after}");
    }

    /// Over TCP: the bytes come through `read_stamped`; a stamp, when the kernel gives one, is
    /// on the same clock. (Not every TCP read gets one: on the 6.18 kernel this was written on,
    /// a single small loopback write from this thread came without, while the server's writes
    /// in a real run came with.)
    #[test]
    fn tcp_read_stamped() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let mut tx = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
            let (rx, _) = l.accept().await.unwrap();
            arrival_stamps(&rx).unwrap();
            let before = now_us();
            tx.write_all(b"hello").await.unwrap();
            let mut buf = [0u8; 16];
            let (n, at) = read_stamped(&rx, &mut buf).await.unwrap();
            let after = now_us();
            assert_eq!(&buf[..n], b"hello");
            if let Some(at) = at {
                assert!(before <= at + 1 && at <= after + 1, "{before} {at} {after}");
            }
        });
    }
}
