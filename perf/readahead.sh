#!/usr/bin/env bash
# Kernel readahead (BDI read_ahead_kb, [fuse] max_readahead_kb) against the READ requests
# the daemon sees and sequential-read throughput. As root, from the repository root:
#
#   bash perf/readahead.sh [BIN_DIR]      # BIN_DIR: release binaries (default .build/release)
#
# An embedded cluster on a tmpfs, one 1 GiB file (one 2 GiB block) written through the
# mount, then for each read_ahead_kb in RA_LIST (128 512 1024 4096) and two data paths (short-circuit:
# the block file is local and replies are spliced from it; tcp: short_circuit = false,
# bytes stream from the worker through the prefetcher): remount with max_readahead_kb,
# drop the page cache, `dd bs=1M` the file RUNS times. READs and bytes come from the
# daemon's /metrics (curvine_fuse_requests_total{op="read"}, curvine_fuse_io_bytes_total
# {io_type="read"}), the BDI value from sysfs, CPU time and minor faults of the daemon (/proc/<pid>/stat)
# and of dd (/usr/bin/time: its sys time includes the kernel's FUSE copy). On a shared
# machine the CPU columns are steadier than MB/s. Prints a markdown table; stops and
# unmounts everything on exit.
set -u
BIN=${1:-.build/release}
RUNS=${RUNS:-3}
RA_LIST=${RA_LIST:-128 512 1024 4096}
SIZE_MIB=${SIZE_MIB:-1024}
WORK=$(mktemp -d /tmp/cv-readahead.XXXXXX)
MNT=$WORK/mnt
CLUSTER_PID="" FUSE_PID=""
mkdir -p "$MNT" "$WORK/tmpfs"

cleanup() {
  [ -n "$FUSE_PID" ] && kill "$FUSE_PID" 2>/dev/null && wait "$FUSE_PID" 2>/dev/null
  grep -q " $MNT " /proc/mounts && { fusermount3 -u "$MNT" 2>/dev/null || umount -l "$MNT"; }
  [ -n "$CLUSTER_PID" ] && kill "$CLUSTER_PID" 2>/dev/null && wait "$CLUSTER_PID" 2>/dev/null
  grep -q " $WORK/tmpfs " /proc/mounts && umount "$WORK/tmpfs"
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

mount -t tmpfs -o size=$((SIZE_MIB + 512))m tmpfs "$WORK/tmpfs" || exit 1
"$BIN/curvine-cluster" --data-dir "$WORK/tmpfs/cluster" --master-port 0 --worker-port 0 >"$WORK/cluster.log" 2>&1 &
CLUSTER_PID=$!
MASTER=""
for _ in $(seq 300); do
  MASTER=$(sed -n 's/^ready master=\([^ ]*\).*/\1/p' "$WORK/cluster.log" | head -n 1)
  [ -n "$MASTER" ] && break
  sleep 0.1
done
[ -n "$MASTER" ] || { echo "cluster did not start: $(tail -3 "$WORK/cluster.log")" >&2; exit 1; }

start_fuse() {  # $1 = toml
  "$BIN/curvine-fuse" --mnt-path "$MNT" --master-addrs "$MASTER" --web-port 0 --passthrough off --conf "$1" \
    >"$WORK/fuse.log" 2>&1 &
  FUSE_PID=$!
  for _ in $(seq 300); do
    grep -q " $MNT fuse.curvinefs " /proc/mounts && break
    sleep 0.1
  done
  PORT=""
  for _ in $(seq 100); do
    PORT=$(sed -n 's/.*web server listening on 0.0.0.0:\([0-9]*\).*/\1/p' "$WORK/fuse.log" | head -n 1)
    [ -n "$PORT" ] && grep -q "readahead:" "$WORK/fuse.log" && break
    ls "$MNT" >/dev/null 2>&1
    sleep 0.1
  done
}
stop_fuse() {
  kill "$FUSE_PID" 2>/dev/null; wait "$FUSE_PID" 2>/dev/null; FUSE_PID=""
  grep -q " $MNT " /proc/mounts && { fusermount3 -u "$MNT" 2>/dev/null || umount -l "$MNT"; }
}
cpu_ticks() {  # utime + stime of the daemon (all threads), clock ticks
  awk '{ print $14 + $15 }' "/proc/$FUSE_PID/stat"
}
minflt() {  # minor page faults of the daemon
  awk '{ print $10 }' "/proc/$FUSE_PID/stat"
}
metric() {  # $1 = exact series name with labels
  curl -s "http://127.0.0.1:$PORT/metrics" | awk -v k="$1" '$1 == k { print $2 }' | head -n 1
}

conf() {  # $1 = read_ahead_kb, $2 = short_circuit
  cat >"$WORK/ra.toml" <<EOF
[client]
block_size = "2GB"
short_circuit = $2
[fuse]
max_readahead_kb = $1
EOF
  echo "$WORK/ra.toml"
}

start_fuse "$(conf 1024 true)"
dd if=/dev/zero of="$MNT/f" bs=1M count="$SIZE_MIB" conv=fsync status=none || { echo "write failed" >&2; exit 1; }
stop_fuse

TICK=$(getconf CLK_TCK)
echo "| data path | read_ahead_kb (BDI) | READs per GiB | mean READ size | dd bs=1M MB/s, median of $RUNS | best | daemon CPU s/GiB | daemon page faults/GiB | dd CPU s/GiB | runs MB/s |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for path in local tcp; do
  sc=true; [ $path = tcp ] && sc=false
  for ra in $RA_LIST; do
    start_fuse "$(conf $ra $sc)"
    dev=$(awk -v m="$MNT" '$5 == m { print $3 }' /proc/self/mountinfo)
    bdi=$(cat "/sys/class/bdi/$dev/read_ahead_kb" 2>/dev/null || echo "?")
    speeds=() reqs=0 bytes=0 dcpu=0 ddcpu=0 flt=0
    for _ in $(seq "$RUNS"); do
      sync; echo 3 >/proc/sys/vm/drop_caches
      r0=$(metric 'curvine_fuse_requests_total{op="read"}'); b0=$(metric 'curvine_fuse_io_bytes_total{io_type="read"}')
      c0=$(cpu_ticks); f0=$(minflt)
      out=$(/usr/bin/time -f "cpu %S %U" dd if="$MNT/f" of=/dev/null bs=1M 2>&1)
      c1=$(cpu_ticks); f1=$(minflt)
      flt=$((flt + f1 - f0))
      dcpu=$((dcpu + c1 - c0))
      ddcpu=$(echo "$out" | awk -v a="$ddcpu" '/^cpu / { a += $2 + $3 } END { print a }')
      out=$(echo "$out" | grep copied)
      r1=$(metric 'curvine_fuse_requests_total{op="read"}'); b1=$(metric 'curvine_fuse_io_bytes_total{io_type="read"}')
      reqs=$((reqs + ${r1:-0} - ${r0:-0})); bytes=$((bytes + ${b1:-0} - ${b0:-0}))
      # "1073741824 bytes (1.1 GB, 1.0 GiB) copied, 0.9 s, 1.2 GB/s" -> MB/s
      secs=$(echo "$out" | sed -n 's/.*copied, \([0-9.]*\) s.*/\1/p')
      speeds+=("$(awk -v s="$secs" -v n="$SIZE_MIB" 'BEGIN { printf "%.0f", n * 1048576 / s / 1e6 }')")
    done
    med=$(printf '%s\n' "${speeds[@]}" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
    per_gib=$(awk -v r="$reqs" -v n="$RUNS" -v s="$SIZE_MIB" 'BEGIN { printf "%.0f", r / n * 1024 / s }')
    mean=$(awk -v r="$reqs" -v b="$bytes" 'BEGIN { if (r > 0) printf "%.0f KiB", b / r / 1024; else print "n/a" }')
    best=$(printf '%s\n' "${speeds[@]}" | sort -n | tail -n 1)
    dper=$(awk -v c="$dcpu" -v t="$TICK" -v n="$RUNS" -v s="$SIZE_MIB" 'BEGIN { printf "%.2f", c / t / n * 1024 / s }')
    ddper=$(awk -v c="$ddcpu" -v n="$RUNS" -v s="$SIZE_MIB" 'BEGIN { printf "%.2f", c / n * 1024 / s }')
    fper=$(awk -v f="$flt" -v n="$RUNS" -v s="$SIZE_MIB" 'BEGIN { printf "%.0f", f / n * 1024 / s }')
    echo "| $path | $ra ($bdi) | $per_gib | $mean | $med | $best | $dper | $fper | $ddper | ${speeds[*]} |"
    stop_fuse
  done
done
