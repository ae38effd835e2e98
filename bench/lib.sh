# Shared pieces of the load benchmarks (sourced, not run).

install_tools() {
  local need=()
  for t in "$@"; do command -v "$t" >/dev/null 2>&1 || need+=("$t"); done
  if [ ${#need[@]} -gt 0 ]; then
    echo "installing ${need[*]} (Debian packages)" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  fi
}

# bench/media/big.mp4 (~1 GiB, 720p H.264, no re-encode after the first minute) and small.mp4 (20 MB).
make_media() {
  mkdir -p bench/media
  [ -f bench/media/big.mp4 ] && [ -f bench/media/small.mp4 ] && return
  local SRC="-f lavfi -i testsrc2=size=1280x720:rate=24 -f lavfi -i sine=frequency=440:sample_rate=48000"
  local H264="-c:v libx264 -preset veryfast -profile:v high -pix_fmt yuv420p -g 48 -keyint_min 48 -sc_threshold 0 -b:v 3M -maxrate 3M -bufsize 6M -c:a aac -b:a 128k -ac 2"
  ffmpeg -v error -y $SRC -t 60 $H264 -movflags +faststart bench/media/clip60.mp4
  ffmpeg -v error -y -stream_loop 42 -i bench/media/clip60.mp4 -c copy -movflags +faststart bench/media/big.mp4
  ffmpeg -v error -y -i bench/media/clip60.mp4 -c copy -fs 20M -movflags +faststart bench/media/small.mp4
  rm bench/media/clip60.mp4
}

# Total user and system clock ticks of the given PIDs.
cpu_ticks() { for p in "$@"; do awk '{print $14, $15}' "/proc/$p/stat"; done | awk '{u+=$1; s+=$2} END {print u, s}'; }
# Total resident KiB of the given PIDs.
rss_kib() { for p in "$@"; do awk '/VmRSS/ {print $2}' "/proc/$p/status"; done | awk '{t+=$1} END {print t}'; }

machine_report() {
  echo "# $(date -u)  $(uname -srm)"
  echo "# CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs), $(nproc) cores"
  echo "# tcp_wmem: $(cat /proc/sys/net/ipv4/tcp_wmem)  tcp_rmem: $(cat /proc/sys/net/ipv4/tcp_rmem)  congestion: $(cat /proc/sys/net/ipv4/tcp_congestion_control)"
  echo "# somaxconn: $(cat /proc/sys/net/core/somaxconn)  ulimit -n: $(ulimit -n)"
  echo "# shmem_enabled (huge pages for titles held in memory): $(cat /sys/kernel/mm/transparent_hugepage/shmem_enabled 2>/dev/null)"
}

# SHMEM_THP=advise|never: the shmem_enabled mode zerocast's titles are loaded under (they ask
# for huge pages; `advise` gives them, `never` does not), set before the server starts and put
# back by shmem_restore once it has loaded; unset: the machine's own.
SHMEM_WAS=""
shmem_set() {
  local f=/sys/kernel/mm/transparent_hugepage/shmem_enabled
  [ -n "${SHMEM_THP:-}" ] || return 0
  SHMEM_WAS=$(sed 's/.*\[\(.*\)\].*/\1/' "$f")
  echo "$SHMEM_THP" > "$f"
}
shmem_restore() {
  [ -n "$SHMEM_WAS" ] && echo "$SHMEM_WAS" > /sys/kernel/mm/transparent_hugepage/shmem_enabled
  SHMEM_WAS=""
  grep -E "^Shmem(HugePages)?:" /proc/meminfo | tr -s ' ' | tr '\n' ' '; echo
}

# wrk_run OUTFILE CONNS THREADS URL PATH SIZE LEN DURATION PIDS... -> appends "user_ticks sys_ticks rss_kib" to OUTFILE.cpu
wrk_run() {
  local out=$1 conns=$2 threads=$3 url=$4 path=$5 size=$6 len=$7 dur=$8
  shift 8
  local u0 s0 u1 s1
  read -r u0 s0 < <(cpu_ticks "$@")
  PATH_TO_GET=$path RANGE_SIZE=$size FILE_LEN=$len wrk -t"$threads" -c"$conns" -d"${dur}s" --timeout 30s --latency \
    -s bench/range.lua "$url" > "$out" 2>&1 || true
  read -r u1 s1 < <(cpu_ticks "$@")
  echo "$((u1 - u0)) $((s1 - s0)) $(rss_kib "$@")" > "$out.cpu"
}
