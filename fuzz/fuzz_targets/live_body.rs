//! Ingest request-body framing (Content-Length, chunked, until close), driven the way the shell
//! drives it: framing bytes to `framing`, data counted with `data`, in reads of varying size.
#![no_main]
use libfuzzer_sys::fuzz_target;
use live::{RequestBody, Want};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, data)) = data.split_first() else {
        return;
    };
    let mut body = match mode % 3 {
        0 => RequestBody::chunked(),
        1 => RequestBody::length(u64::from(mode) * 31),
        _ => RequestBody::until_close(),
    };
    let read = usize::from(mode / 3 % 16) + 1;
    let mut pending: Vec<u8> = Vec::new();
    let mut rest = data;
    loop {
        match body.want() {
            Want::Done => return,
            Want::Data(n) => {
                if rest.is_empty() && pending.is_empty() {
                    break;
                }
                // Data comes from the side buffer first, then from the socket.
                let avail = if pending.is_empty() {
                    rest.len()
                } else {
                    pending.len()
                };
                let take = usize::try_from(n)
                    .unwrap_or(usize::MAX)
                    .min(avail)
                    .min(read);
                if take == 0 {
                    break;
                }
                if pending.is_empty() {
                    rest = &rest[take..];
                } else {
                    pending.drain(..take);
                }
                body.data(take);
            }
            Want::Framing => {
                let used = match body.framing(&pending) {
                    Ok(used) => used,
                    Err(_) => return,
                };
                assert!(used <= pending.len());
                pending.drain(..used);
                if used == 0 {
                    if rest.is_empty() {
                        break;
                    }
                    let take = read.min(rest.len());
                    pending.extend_from_slice(&rest[..take]);
                    rest = &rest[take..];
                }
            }
        }
    }
    let _ = body.eof();
});
