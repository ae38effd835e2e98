//! The demo library compiled into the binary (`demo/` at the repository root; see its README for
//! the ffmpeg commands that made each file). Served by `zerocast serve` without `--library`.

pub const FILES: &[(&str, &[u8])] = &[
    (
        "faststart.mp4",
        include_bytes!("../../../demo/faststart.mp4"),
    ),
    (
        "ntsc-moov-at-end.mp4",
        include_bytes!("../../../demo/ntsc-moov-at-end.mp4"),
    ),
    (
        "fragmented.mp4",
        include_bytes!("../../../demo/fragmented.mp4"),
    ),
    ("clip.ts", include_bytes!("../../../demo/clip.ts")),
    (
        "vp9-opus.webm",
        include_bytes!("../../../demo/vp9-opus.webm"),
    ),
];
