//! Prints the seek index of a file: `cargo run -p media --example dump FILE`.
use std::io::Write;

fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: dump FILE");
        std::process::exit(2);
    };
    let data = match std::fs::read(&path) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("{path}: {e}");
            std::process::exit(1);
        }
    };
    let mut out = std::io::stdout().lock();
    let _ = match media::index(&data) {
        Ok(i) => writeln!(
            out,
            "{:?} duration={} video={:?} audio={:?}",
            i.container, i.duration, i.video, i.audio
        )
        .and_then(|()| {
            i.keyframes
                .iter()
                .try_for_each(|k| writeln!(out, "{:.6} {}", k.time.as_secs_f64(), k.offset))
        }),
        Err(e) => writeln!(out, "error: {e}"),
    };
}
