#!/usr/bin/env bash
# Regenerates the embedded demo library in demo/ with ffmpeg (Debian's ffmpeg 5.1 made the committed
# files). Encoders are not bit-exact across versions, so regenerated files differ in their bytes; the
# tests compare against ffprobe of whatever files are present, never against hard-coded offsets.
set -euo pipefail
cd "$(dirname "$0")/../demo"
SRC24="-f lavfi -i testsrc2=size=320x180:rate=24 -f lavfi -i sine=frequency=440:sample_rate=48000"
SRCNTSC="-f lavfi -i testsrc2=size=320x180:rate=30000/1001 -f lavfi -i sine=frequency=330:sample_rate=48000"
H264="-c:v libx264 -preset veryfast -profile:v high -pix_fmt yuv420p -bf 3 -sc_threshold 0 -b:v 200k -maxrate 200k -bufsize 400k -c:a aac -b:a 48k -ac 2"
F="ffmpeg -v error -y -bitexact"
# H.264/AAC, index (moov) at the front, 24 fps, a keyframe every 2 s.
$F $SRC24 -t 8 $H264 -g 48 -keyint_min 48 -movflags +faststart faststart.mp4
# H.264/AAC at 29.97 fps with B-frames, index at the end, 70 s (drop-frame timecodes cross minutes).
$F $SRCNTSC -t 70 $H264 -g 60 -keyint_min 60 ntsc-moov-at-end.mp4
# Fragmented MP4 (moof/traf/trun per keyframe), from the faststart clip without re-encoding.
$F -i faststart.mp4 -c copy -movflags frag_keyframe+empty_moov+default_base_moof fragmented.mp4
# MPEG-TS from the same clip.
$F -i faststart.mp4 -c copy -f mpegts clip.ts
# VP9/Opus WebM (with Cues).
$F $SRC24 -t 6 -c:v libvpx-vp9 -deadline realtime -cpu-used 8 -row-mt 1 -b:v 300k -g 48 -c:a libopus -b:a 48k vp9-opus.webm
sha256sum faststart.mp4 ntsc-moov-at-end.mp4 fragmented.mp4 clip.ts vp9-opus.webm
