#!/usr/bin/env bash
# zerocast vs nginx, serving the same video files on loopback, side by side in one run.
#
#   bench/vod-vs-nginx.sh                       # DUR=5 s per run, ROUNDS=3, both servers
#   DUR=10 ROUNDS=5 bench/vod-vs-nginx.sh
#   SERVERS=zerocast bench/vod-vs-nginx.sh      # one server only
#   ZEROCAST_CONFIG=my.toml ONLY='4MiB' IDLE=0 bench/vod-vs-nginx.sh   # a zerocast config, some rows
#   TLS=1 ONLY='1KiB|1MiB' bench/vod-vs-nginx.sh   # HTTPS on both (same certificate, TLS 1.3,
#                                                   # AES-128-GCM), then TLS handshakes per second
#
# Installs nginx, wrk, iperf3 and ffmpeg from Debian packages when missing; makes bench/media/ when
# absent (a ~1 GiB 720p H.264 MP4 and a 20 MB one); builds zerocast in release mode; starts both
# servers on loopback (nginx with bench/nginx.conf.in: sendfile, tcp_nopush, tcp_nodelay,
# open_file_cache, no access log, one worker per core); measures the loopback ceiling with iperf3;
# runs every row against each server in alternation (A B A B ...) with the same wrk Lua script;
# measures 10,000 idle keep-alive connections (first, on the fresh servers); stops everything it started by PID; prints one table
# (medians of the rounds) and keeps the raw outputs in bench/results/<time>/.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
DUR=${DUR:-5}
ROUNDS=${ROUNDS:-3}
SERVERS=${SERVERS:-"zerocast nginx"}
ZPORT=${ZPORT:-18081}
NPORT=${NPORT:-18082}
IDLE=${IDLE:-10000}
TLS=${TLS:-0}
OUT=bench/results/$(date -u +%Y%m%dT%H%M%SZ)$(if [ "$TLS" = 1 ]; then echo -tls; fi)
mkdir -p "$OUT"
SCHEME=http
ZTLS=(--listen "127.0.0.1:$ZPORT")
SSL=""
NTLS=""
if [ "$TLS" = 1 ]; then
  SCHEME=https
  # A throwaway certificate, outside the results (which are kept).
  CERTS=$(mktemp -d)
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost \
    -addext subjectAltName=IP:127.0.0.1 -keyout "$CERTS/key.pem" -out "$CERTS/cert.pem" 2>/dev/null
  printf 'tls_cipher_suites = ["TLS13_AES_128_GCM_SHA256"]\n' > "$OUT/zerocast-tls.toml"
  ZTLS=(--listen off --tls-listen "127.0.0.1:$ZPORT" --tls-cert "$CERTS/cert.pem" --tls-key "$CERTS/key.pem" --config "$OUT/zerocast-tls.toml")
  SSL=ssl
  NTLS="ssl_certificate $CERTS/cert.pem; ssl_certificate_key $CERTS/key.pem; ssl_protocols TLSv1.3; ssl_conf_command Ciphersuites TLS_AES_128_GCM_SHA256; ssl_conf_command Options KTLS; ssl_session_cache shared:SSL:10m; ssl_session_tickets on;"
fi
install_tools wrk ffmpeg nginx iperf3 python3
make_media
cargo build --release -q -p zerocast
BIG=$(stat -c %s bench/media/big.mp4)
SMALL=$(stat -c %s bench/media/small.mp4)
machine_report | tee "$OUT/env.txt"

PIDS_TO_STOP=()
cleanup() { for p in "${PIDS_TO_STOP[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

declare -A PIDS URL
if [[ " $SERVERS " == *" zerocast "* ]]; then
  # shellcheck disable=SC2086
  target/release/zerocast serve --library bench/media --rtmp-listen off \
    ${ZEROCAST_CONFIG:+--config "$ZEROCAST_CONFIG"} "${ZTLS[@]}" 2> "$OUT/zerocast.log" &
  PIDS[zerocast]=$!
  PIDS_TO_STOP+=("$!")
  until grep -q -E "listening|HTTPS" "$OUT/zerocast.log"; do
    kill -0 "${PIDS[zerocast]}" 2>/dev/null || { cat "$OUT/zerocast.log"; exit 1; }
    sleep 0.1
  done
  URL[zerocast]=$SCHEME://127.0.0.1:$ZPORT
fi
if [[ " $SERVERS " == *" nginx "* ]]; then
  NDIR=$(mktemp -d)
  sed -e "s|@MEDIA@|$PWD/bench/media|" -e "s|@PORT@|$NPORT|" -e "s|@DIR@|$NDIR|" -e "s|@WORKERS@|$(nproc)|" \
    -e "s|@SSL@|$SSL|" -e "s|@TLS@|$NTLS|" \
    bench/nginx.conf.in > "$NDIR/nginx.conf"
  cp "$NDIR/nginx.conf" "$OUT/nginx.conf"
  nginx -c "$NDIR/nginx.conf"
  sleep 0.5
  master=$(cat "$NDIR/nginx.pid")
  PIDS[nginx]="$master $(pgrep -P "$master" | xargs)"
  PIDS_TO_STOP+=("$master")
  URL[nginx]=$SCHEME://127.0.0.1:$NPORT
  # Warm the page cache for nginx, as zerocast's memory is warm.
  cat bench/media/big.mp4 bench/media/small.mp4 > /dev/null
fi

# Idle keep-alive connections, on the fresh servers (before any load has grown or shrunk their heaps):
# RSS before and with $IDLE connections open after one request each.
if [ "$IDLE" -gt 0 ]; then
  for srv in $SERVERS; do
    port=${URL[$srv]##*:}
    # shellcheck disable=SC2086
    before=$(rss_kib ${PIDS[$srv]})
    coproc IDLEC { IDLE_TLS=$TLS python3 bench/idle_conns.py 127.0.0.1 "$port" "$IDLE" /videos/small.mp4 60; }
    read -r _ready count <&"${IDLEC[0]}"
    sleep 1
    # shellcheck disable=SC2086
    after=$(rss_kib ${PIDS[$srv]})
    echo "$srv $before $after $count" >> "$OUT/idle.txt"
    echo "" >&"${IDLEC[1]}"
    wait "$IDLEC_PID" 2>/dev/null || true
    sleep 2
  done
fi


# The physical ceiling: one loopback TCP stream.
iperf3 -s -1 -p 5299 > /dev/null 2>&1 &
sleep 0.3
iperf3 -c 127.0.0.1 -p 5299 -t 5 -J > "$OUT/iperf3.json" 2>&1 || true
CEIL=$(python3 -c "import json;print(json.load(open('$OUT/iperf3.json'))['end']['sum_received']['bits_per_second']/8e9)" 2>/dev/null || echo 0)
echo "# iperf3 loopback ceiling: $CEIL GB/s" | tee -a "$OUT/env.txt"

# name conns threads path size len [duration multiplier: connection setup dominates short runs]
ROWS=(
  "range_1KiB 64 2 /videos/big.mp4 1024 $BIG"
  "range_16KiB 64 2 /videos/big.mp4 16384 $BIG"
  "range_64KiB 64 2 /videos/big.mp4 65536 $BIG"
  "range_256KiB 64 2 /videos/big.mp4 262144 $BIG"
  "range_1MiB 64 2 /videos/big.mp4 1048576 $BIG"
  "range_4MiB 64 2 /videos/big.mp4 4194304 $BIG"
  "whole_20MB 64 2 /videos/small.mp4 0 $SMALL 4"
  "range_1MiB_c1000 1000 2 /videos/big.mp4 1048576 $BIG 2"
  "range_1MiB_c10000 10000 2 /videos/big.mp4 1048576 $BIG 4"
)
[ -n "${ONLY:-}" ] && mapfile -t ROWS < <(printf '%s\n' "${ROWS[@]}" | grep -E "$ONLY")
for row in "${ROWS[@]}"; do
  read -r name conns threads path size len mult <<< "$row"
  dur=$((DUR * ${mult:-1}))
  for round in $(seq 1 "$ROUNDS"); do
    for srv in $SERVERS; do
      echo "row $name round $round $srv" >&2
      # shellcheck disable=SC2086
      echo "$dur" > "$OUT/$name.duration"
      wrk_run "$OUT/$name.$srv.$round.txt" "$conns" "$threads" "${URL[$srv]}" "$path" "$size" "$len" "$dur" ${PIDS[$srv]}
    done
  done
done

# TLS handshakes per second: new sessions, and resumptions (openssl s_time, two clients at once,
# as many as this machine has cores; the figure is the sum).
if [ "$TLS" = 1 ]; then
  for srv in $SERVERS; do
    port=${URL[$srv]##*:}
    for mode in new reuse; do
      clients=()
      for i in $(seq "$(nproc)"); do
        openssl s_time -connect "127.0.0.1:$port" -"$mode" -time "$DUR" -www /healthz 2>/dev/null \
          | grep -E "connections in [0-9.]+ real" > "$OUT/handshakes.$srv.$mode.$i.txt" &
        clients+=("$!")
      done
      wait "${clients[@]}"
      awk -v s="$srv" -v m="$mode" '{r += $1 / $4} END {printf "%s %s %.0f\n", s, m, r}' \
        "$OUT"/handshakes."$srv"."$mode".*.txt | tee -a "$OUT/handshakes.txt"
    done
  done
fi

python3 bench/summarize.py "$OUT" "$CEIL" "$SERVERS" | tee "$OUT/table.md"
echo "raw outputs in $OUT"
