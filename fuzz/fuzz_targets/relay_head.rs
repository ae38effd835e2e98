//! An origin's response head as an edge reads it (`live::relay::head::parse`), fed a growing
//! prefix at a time as reads deliver it: never a panic, a `used` within the input, and the same
//! answer whatever the read sizes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use live::relay::head::{parse, Answer};

/// An answer's status and, for a stream, where its body starts.
fn kind(a: &Answer) -> (u16, usize) {
    match a {
        Answer::Stream { used, .. } => (200, *used),
        Answer::NotFound => (404, 0),
        Answer::Refused(code) => (*code, 0),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&step, data)) = data.split_first() else {
        return;
    };
    let step = usize::from(step % 64) + 1;
    let whole = parse(data);
    if let Ok(Some(Answer::Stream { used, .. })) = &whole {
        assert!(*used <= data.len());
    }
    // The same bytes arriving a few at a time: each prefix is incomplete, or the answer the
    // whole input gives (a complete head ends where it ends, whatever follows it).
    let mut end = 0;
    while end < data.len() {
        end = (end + step).min(data.len());
        match parse(&data[..end]) {
            Ok(None) => continue,
            Ok(Some(answer)) => {
                let Ok(Some(whole)) = &whole else {
                    panic!("a prefix answered {answer:?}, the whole input {whole:?}");
                };
                assert_eq!(kind(&answer), kind(whole));
                break;
            }
            Err(_) => break,
        }
    }
});
