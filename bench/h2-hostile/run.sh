#!/bin/bash
# HTTP/2 clients that cost the server what they can (docs/benchmarks.md §18): a fresh server on
# a 64 MiB title mapped from disk (--cache-size 1MiB), header_read_timeout 2 s and send_timeout
# $1 s, then one of the clients, then the server is ended by its PID.
#   bench/h2-hostile/run.sh 5 no_preface.py [half]
#   bench/h2-hostile/run.sh 5 zero_window_after_goaway.py noping|ping [streams]
#   bench/h2-hostile/run.sh 60 reads_nothing.py CONNECTIONS PID SECONDS   (PID is filled in)
# Needs a built target/debug/zerocast (or ZEROCAST), ffmpeg, openssl, curl and python3.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${ZEROCAST:-$here/../../target/debug/zerocast}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/lib"
ffmpeg -v error -f lavfi -i testsrc2=size=1280x720:rate=30 -f lavfi -i anoisesrc -t 40 \
    -c:v libx264 -preset ultrafast -b:v 14M -c:a aac "$work/lib/big.mp4"
openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=localhost -days 1 \
    -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
    -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
printf 'header_read_timeout_secs = 2\nsend_timeout_secs = %s\n' "$1" > "$work/cfg.toml"
"$bin" serve --config "$work/cfg.toml" --library "$work/lib" --listen 127.0.0.1:18080 \
    --tls-listen 127.0.0.1:18443 --tls-cert "$work/cert.pem" --tls-key "$work/key.pem" \
    --rtmp-listen off --cache-size 1MiB > "$work/server.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 50); do curl -sk https://localhost:18443/healthz >/dev/null && break; sleep 0.2; done
client=$2
shift 2
cd "$here"
if [ "$client" = reads_nothing.py ]; then
    python3 reads_nothing.py "$1" "$pid" "${3:-30}"
else
    python3 "$client" "$@"
fi
