//! Prints the seek index of a file: `cargo run -p media --example dump FILE`.
fn main() {
    let path = std::env::args().nth(1).expect("usage: dump FILE");
    let data = std::fs::read(&path).expect("read");
    match media::index(&data) {
        Ok(i) => {
            println!(
                "{:?} duration={} video={:?} audio={:?}",
                i.container, i.duration, i.video, i.audio
            );
            for k in &i.keyframes {
                println!("{:.6} {}", k.time.as_secs_f64(), k.offset);
            }
        }
        Err(e) => println!("error: {e}"),
    }
}
