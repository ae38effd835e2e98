//! The in-process publisher (`--publish FILE`): a chunked `POST /live/{stream}` of an MPEG-TS
//! file in a loop, paced in real time by its timestamps, each chunk followed by a latency mark:
//! one TS packet on PID 0x1FF0 (not in the PMT, so players ignore it) carrying the wall-clock
//! time it was written, which the TS viewers read back ([`read_mark`]).

use crate::report::Shared;
use crate::stamp::now_us;
use anyhow::{bail, Result};
use media::ts::PACKET;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Instant;

/// The PID latency marks are sent on.
pub const MARK_PID: u16 = 0x1ff0;
/// What a mark's payload starts with, before the time.
pub const MARK_MAGIC: &[u8; 6] = b"ZCMARK";

/// A latency mark: PID 0x1FF0, payload only, continuity counter `cc`, the time `now` (wall-clock
/// microseconds).
pub fn mark(now: u64, cc: u8) -> [u8; PACKET] {
    let mut m = [0xffu8; PACKET];
    m[..4].copy_from_slice(&[0x47, (MARK_PID >> 8) as u8, MARK_PID as u8, 0x10 | cc]);
    m[4..10].copy_from_slice(MARK_MAGIC);
    m[10..18].copy_from_slice(&now.to_be_bytes());
    m
}

/// The time a mark was written, when `p` (a packet on [`MARK_PID`]) is one.
pub fn read_mark(p: &[u8; PACKET]) -> Option<u64> {
    (&p[4..10] == MARK_MAGIC).then(|| {
        let mut t = [0u8; 8];
        t.copy_from_slice(&p[10..18]);
        u64::from_be_bytes(t)
    })
}

/// Publishes `data` (MPEG-TS) in a loop, paced in real time, each chunk followed by a mark,
/// until told to stop; counts the body bytes written.
pub async fn publish(
    addr: SocketAddr,
    stream: &str,
    key: Option<&str>,
    data: &[u8],
    sh: Arc<Shared>,
    written: &AtomicU64,
) -> Result<()> {
    let data = &data[..data.len() / PACKET * PACKET];
    let plan = client::live::schedule(data);
    if plan.is_empty() {
        bail!("no timestamps to pace the file by");
    }
    let total = plan.last().map_or(0, |p| p.1) + 3600;
    let mut s = TcpStream::connect(addr).await?;
    s.set_nodelay(true)?;
    let q = key.map(|k| format!("?key={k}")).unwrap_or_default();
    s.write_all(
        format!("POST /live/{stream}{q} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
            .as_bytes(),
    )
    .await?;
    let began = Instant::now();
    let mut restamp = media::ts::Restamp::default();
    let mut mark_cc = 0u8;
    let mut chunk = Vec::new();
    'laps: for lap in 0u64.. {
        let mut copy = data.to_vec();
        if lap > 0 {
            restamp.new_session();
        }
        restamp.apply(&mut copy);
        let (mut i, mut sent) = (0, 0);
        while sent < copy.len() {
            let due = lap * total + plan.get(i).map_or(total, |p| p.1);
            let due = began + Duration::from_micros(due * 100 / 9);
            tokio::time::sleep_until(due).await;
            let horizon = plan.get(i).map_or(u64::MAX, |p| p.1 + 1800);
            while i < plan.len() && plan[i].1 <= horizon {
                i += 1;
            }
            let end = plan.get(i).map_or(copy.len(), |p| p.0);
            if sh.stop.load(Relaxed) {
                break 'laps;
            }
            if end <= sent {
                continue;
            }
            chunk.clear();
            chunk.extend_from_slice(&copy[sent..end]);
            chunk.extend_from_slice(&mark(now_us(), mark_cc));
            mark_cc = (mark_cc + 1) & 0x0f;
            s.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                .await?;
            s.write_all(&chunk).await?;
            s.write_all(b"\r\n").await?;
            written.fetch_add(chunk.len() as u64, Relaxed);
            sent = end;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mark_is_a_payload_only_packet_on_its_pid_and_reads_back() {
        let m = mark(1_700_000_000_123_456, 7);
        let h = media::ts::header(&m).expect("a valid TS packet");
        assert_eq!(h.pid, MARK_PID);
        assert_eq!(h.cc, 7);
        assert!(h.has_payload);
        assert_eq!(read_mark(&m), Some(1_700_000_000_123_456));
    }

    #[test]
    fn a_packet_without_the_magic_is_no_mark() {
        let mut m = mark(5, 0);
        m[4] = b'X';
        assert_eq!(read_mark(&m), None);
    }
}
