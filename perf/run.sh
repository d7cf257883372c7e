#!/usr/bin/env bash
# perf/run.sh [--quick]: the benchmark of perf/README.md, in one run.
#
# Measures the same fio jobs and metadata phases on
#   native          a tmpfs directory (no disk noise)
#   passthrough_hp  libfuse 3.14's example/passthrough_hp over that directory, built here
#                   from the Debian source of fuse3 (`apt-get source fuse3`)
#   ours (pt)       curvine-fuse --passthrough auto over the embedded cluster (single-block files)
#   ours (local)    curvine-fuse --passthrough off, short-circuit on: data local, normal read path
#   ours (tcp)      curvine-fuse --passthrough off, [client] short_circuit = false: via the worker
# plus the single-stream loopback TCP limit, then prints one table and writes it to
# perf/results/<date>-<kernel>-<N>cpu[-quick].{md,tsv}.
#
# Needs root (mounts, drop_caches). Any step that fails turns its figures into "n/a [reason]"
# and the run goes on. Everything it starts is stopped and unmounted on exit (trap).
#
# Knobs (env): PERF_SCRATCH (swift --scratch-path, default .build-perf), PERF_SKIP_BUILD=1
# (use the binaries already in $PERF_SCRATCH/release), PERF_SIZE_MB, PERF_NFILES,
# PERF_RUNTIME, PERF_REPEAT (override the --quick / full sizes).
set -uo pipefail

PERF=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$PERF")
cd "$ROOT" || exit 1

QUICK=0
for a in "$@"; do
  case $a in
    --quick) QUICK=1 ;;
    -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "perf/run.sh: unknown argument '$a' (usage: bash perf/run.sh [--quick])" >&2; exit 2 ;;
  esac
done
if [ "$(id -u)" != 0 ]; then echo "perf/run.sh: run as root (FUSE mounts, drop_caches)" >&2; exit 1; fi

if [ $QUICK = 1 ]; then
  SIZE_MB=${PERF_SIZE_MB:-256}; NFILES=${PERF_NFILES:-2000}; RUNTIME=${PERF_RUNTIME:-3}; REPEAT=${PERF_REPEAT:-1}
  TCP_RUNS=1; TCP_SECS=2
else
  SIZE_MB=${PERF_SIZE_MB:-1024}; NFILES=${PERF_NFILES:-10000}; RUNTIME=${PERF_RUNTIME:-10}; REPEAT=${PERF_REPEAT:-3}
  TCP_RUNS=3; TCP_SECS=3
fi
SIZE_B=$((SIZE_MB << 20))
WARM_PASSES=5                   # "stat warm": one untimed pass, then REPEAT runs of 5 timed passes (median)
TTL_SETTLE=1.2                  # s between create and the untimed pass: longer than the longest kernel
                                # entry/attr TTL of any column (ours: 1 s, upstream's default), so that
                                # the untimed pass, not the create phase, fills every cache
FIO_TIMEOUT=$((RUNTIME + 300))  # a hung mount fails its row instead of the run
MD_TIMEOUT=600
SCRATCH=${PERF_SCRATCH:-.build-perf}  # own scratch dir: never waits on, or rebuilds, another build in .build
case $SCRATCH in /*) BIN=$SCRATCH/release ;; *) BIN=$ROOT/$SCRATCH/release ;; esac
export DEBIAN_FRONTEND=noninteractive

WORK=$(mktemp -d /tmp/curvine-perf.XXXXXX)
TMPFS=$WORK/tmpfs          # native dir, passthrough_hp's source, the cluster's data dir
MNT_PTHP=$WORK/mnt-pthp
MNT_OURS=$WORK/mnt-ours
RAW=$WORK/raw.tsv
NOTES=$WORK/notes           # one line per run-level note for the report
: >"$RAW"; : >"$NOTES"
mkdir -p "$TMPFS" "$MNT_PTHP" "$MNT_OURS"

log() { printf '[perf %s] %s\n' "$(date +%T)" "$*" >&2; }
note() { log "NOTE: $*"; printf '%s\n' "$*" >>"$NOTES"; }
# record COLUMN JOB VALUE UNIT SAMPLES NOTE
record() { printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$5" "${6//$'\t'/ }" >>"$RAW"; }
na() { log "n/a: $1 $2: $3"; record "$1" "$2" n/a "" "" "$1: $3"; }
# A one-line reason from a log file: its last non-empty line, without tabs, at most 160 chars.
last_line() { grep -v '^[[:space:]]*$' "$1" 2>/dev/null | tail -n 1 | tr '\t' ' ' | cut -c1-160; }
is_mounted() { awk -v m="$1" '$2 == m { found = 1 } END { exit !found }' /proc/mounts; }
mount_type() { awk -v m="$1" '$2 == m { t = $3 } END { print t }' /proc/mounts; }
drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }

# ---------------------------------------------------------------- cleanup (always runs)
PTHP_PID=""; OURS_PID=""; CLUSTER_PID=""
stop_pid() {  # stop_pid PID: SIGTERM, wait up to 10 s, then SIGKILL; only the process we started
  local pid=$1
  [ -n "$pid" ] || return 0
  kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }
  kill -TERM "$pid" 2>/dev/null
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && { log "pid $pid ignored SIGTERM; SIGKILL"; kill -KILL "$pid" 2>/dev/null; }
  wait "$pid" 2>/dev/null
  return 0
}
unmount_fuse() {  # unmount_fuse MNT: normal unmount, lazy if busy
  is_mounted "$1" || return 0
  fusermount3 -u "$1" 2>/dev/null || { sleep 0.5; fusermount3 -u "$1" 2>/dev/null; } || fusermount3 -uz "$1" 2>/dev/null
  for _ in $(seq 50); do is_mounted "$1" || return 0; sleep 0.1; done
  log "could not unmount $1"; return 1
}
cleanup() {
  set +e
  trap - EXIT INT TERM
  stop_ours; stop_pthp
  stop_pid "$CLUSTER_PID"; CLUSTER_PID=""
  unmount_fuse "$MNT_OURS"; unmount_fuse "$MNT_PTHP"
  if is_mounted "$TMPFS"; then umount "$TMPFS" 2>/dev/null || umount -l "$TMPFS"; fi
  # Keep the last run's logs (daemon logs, fio JSON, build log) in the git-ignored
  # perf/results/tmp/last-run/ for post-mortems, then delete the work dir, but only once
  # nothing is mounted under it (rm must not walk into a mount).
  rm -rf "$PERF/results/tmp/last-run"; mkdir -p "$PERF/results/tmp/last-run"
  find "$WORK" -maxdepth 1 -type f \( -name '*.log' -o -name '*.json' -o -name '*.err' -o -name '*.toml' -o -name '*.tsv' \) \
    -exec cp {} "$PERF/results/tmp/last-run/" \; 2>/dev/null
  if ! awk -v w="$WORK/" 'index($2, w) == 1 { f = 1 } END { exit !f }' /proc/mounts; then
    rm -rf "$WORK"
  else
    log "left $WORK in place: something is still mounted under it"
  fi
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

# ---------------------------------------------------------------- 1. packages
need=()
for p in fio fuse3 libfuse3-dev libnuma-dev pkg-config build-essential dpkg-dev python3; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  log "apt-get install ${need[*]}"
  apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null || log "apt-get install failed (continuing)"
fi
command -v fio >/dev/null || { log "fio is missing and could not be installed: nothing to measure"; exit 1; }

# ---------------------------------------------------------------- 2. tools built at run time
gcc -O2 -Wall -pthread -o "$WORK/mdbench" "$PERF/mdbench.c" || { log "cannot compile perf/mdbench.c"; exit 1; }

# passthrough_hp: libfuse 3.14's own example, from the Debian source package (never committed).
# Built with one g++ command against the installed libfuse3-dev: that is the same 3.14.0
# source release (Debian's fuse3 3.14.0-4 builds both), so the headers and library match the
# code, and the flags are the ones libfuse's meson project uses for it (-O2, C++11). The
# Debian package build (dpkg-buildpackage) would also work but takes minutes and needs the
# whole build-dependency set, for one example it does not even install.
PTHP=""; PTHP_FAIL=""
build_pthp() {
  if ! grep -rqsE '^[[:space:]]*deb-src[[:space:]].*bookworm[[:space:]].*main' /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
     && ! grep -qsE '^Types:.*deb-src' /etc/apt/sources.list.d/*.sources; then
    log "adding /etc/apt/sources.list.d/src.list (deb-src bookworm main)"
    echo 'deb-src http://deb.debian.org/debian bookworm main' >/etc/apt/sources.list.d/src.list
    apt-get update -qq || true
  fi
  mkdir -p "$WORK/src"
  if ! (cd "$WORK/src" && apt-get source -qq fuse3 >"$WORK/apt-source.log" 2>&1); then
    apt-get update -qq >/dev/null 2>&1  # deb-src present but its index never fetched
    (cd "$WORK/src" && apt-get source -qq fuse3 >"$WORK/apt-source.log" 2>&1) || {
      PTHP_FAIL="apt-get source fuse3 failed: $(last_line "$WORK/apt-source.log")"; return 1; }
  fi
  local src
  src=$(ls -d "$WORK"/src/fuse3-*/ 2>/dev/null | head -n 1)
  [ -n "$src" ] && [ -f "$src/example/passthrough_hp.cc" ] || { PTHP_FAIL="no example/passthrough_hp.cc in the fuse3 source"; return 1; }
  local srcver libver
  srcver=$(basename "$src"); srcver=${srcver#fuse3-}
  libver=$(pkg-config --modversion fuse3 2>/dev/null)
  [ "$srcver" = "$libver" ] || note "fuse3 source is $srcver but the installed libfuse3-dev is $libver"
  # shellcheck disable=SC2046
  if ! g++ -O2 -std=c++11 -o "$WORK/passthrough_hp" "$src/example/passthrough_hp.cc" \
        $(pkg-config --cflags --libs fuse3) -lpthread >"$WORK/pthp-build.log" 2>&1; then
    PTHP_FAIL="g++ passthrough_hp.cc failed: $(grep -m1 'error' "$WORK/pthp-build.log" | cut -c1-160)"; return 1
  fi
  PTHP=$WORK/passthrough_hp
  log "built passthrough_hp from fuse3 $srcver source"
}
build_pthp || log "passthrough_hp: $PTHP_FAIL"

# ---------------------------------------------------------------- 3. our binaries
OURS_FAIL=""
if [ "${PERF_SKIP_BUILD:-0}" = 1 ]; then
  log "PERF_SKIP_BUILD=1: using the binaries in $BIN"
else
  log "swift build -c release --scratch-path $SCRATCH (products curvine-fuse, curvine-cluster, cv)"
  # Other people edit the tree while this runs: "was modified during the build" is transient,
  # so that error (only) gets two more tries.
  build_ok=0
  for attempt in 1 2 3; do
    if swift build -c release --scratch-path "$SCRATCH" >"$WORK/swift-build.log" 2>&1; then build_ok=1; break; fi
    grep -q 'was modified during the build' "$WORK/swift-build.log" || break
    log "a source file changed during the build (attempt $attempt)"
    sleep 5
  done
  if [ $build_ok = 0 ]; then
    err=$(grep -m1 'error:' "$WORK/swift-build.log" | sed "s|$ROOT/||" | cut -c1-200)
    OURS_FAIL="swift build -c release failed (log: perf/results/tmp/last-run/swift-build.log): ${err:-$(last_line "$WORK/swift-build.log")}"
  fi
fi
if [ -z "$OURS_FAIL" ]; then
  for b in curvine-fuse curvine-cluster; do
    [ -x "$BIN/$b" ] || { OURS_FAIL="$SCRATCH/release/$b does not exist"; break; }
  done
fi
[ -n "$OURS_FAIL" ] && log "ours: $OURS_FAIL"

# ---------------------------------------------------------------- 4. the tmpfs
if ! mount -t tmpfs -o "size=$((SIZE_MB * 8 + 4096))m,mode=0755" perf-tmpfs "$TMPFS"; then
  log "cannot mount a tmpfs on $TMPFS"; exit 1
fi
mkdir -p "$TMPFS/native" "$TMPFS/cluster"

# ---------------------------------------------------------------- 5. loopback TCP limit
TCP_LIMIT=""; TCP_SAMPLES=""; TCP_NOTE=""
log "loopback TCP limit: $TCP_RUNS x ${TCP_SECS}s"
for _ in $(seq "$TCP_RUNS"); do
  out=$(python3 "$PERF/tcp_limit.py" "$TCP_SECS" 2>&1) || { TCP_NOTE="tcp_limit.py failed: $out"; break; }
  v=$(sed -n 's/.*gib_per_s=\([0-9.]*\).*/\1/p' <<<"$out")
  TCP_SAMPLES="$TCP_SAMPLES${TCP_SAMPLES:+ }$v"
done
# The limit is the best run: other load on the machine can only lower it.
# shellcheck disable=SC2086
[ -n "$TCP_SAMPLES" ] && [ -z "$TCP_NOTE" ] && TCP_LIMIT=$(printf '%s\n' $TCP_SAMPLES | sort -g | tail -n 1)

# ---------------------------------------------------------------- the jobs, per column
COL_FAIL=""  # set when a column's mount dies or hangs: its remaining rows become n/a

# fio_job COL JOB KIND JOBFILE VAR=VALUE...: one fio run after dropping the page cache.
# Sets FIO_VAL to the figure, or returns 1 with the reason in FIO_ERR. (Called directly,
# never in $(...), so that COL_FAIL survives.)
FIO_VAL=""; FIO_ERR=""
fio_job() {
  local col=$1 job=$2 kind=$3 jobfile=$4; shift 4
  local out=$WORK/fio-$col-$job.json err=$WORK/fio-$col-$job.err rc
  drop_caches
  env "$@" timeout -k 10 "$FIO_TIMEOUT" fio --output-format=json "$jobfile" >"$out" 2>"$err"
  rc=$?
  if [ $rc = 124 ] || [ $rc = 137 ]; then
    FIO_ERR="fio timed out after ${FIO_TIMEOUT}s"; COL_FAIL="$FIO_ERR in $job"; return 1
  fi
  if ! FIO_VAL=$(python3 "$PERF/report.py" fio "$out" "$kind" 2>>"$err"); then
    FIO_ERR="$(last_line "$err")"; [ $rc = 0 ] || FIO_ERR="fio exit $rc: $FIO_ERR"; return 1
  fi
}

# measure COL JOB UNIT KIND REPEATS JOBFILE VAR=VALUE...: median of REPEATS runs into RAW.
measure() {
  local col=$1 job=$2 unit=$3 kind=$4 reps=$5 jobfile=$6; shift 6
  if [ -n "$COL_FAIL" ]; then na "$col" "$job" "$COL_FAIL"; return 1; fi
  local samples="" v
  for _ in $(seq "$reps"); do
    fio_job "$col" "$job" "$kind" "$jobfile" "$@" || { na "$col" "$job" "$FIO_ERR"; return 1; }
    samples="$samples${samples:+ }$FIO_VAL"
  done
  # shellcheck disable=SC2086
  v=$(python3 "$PERF/report.py" median $samples)
  log "$col $job: $v $unit ($samples)"
  record "$col" "$job" "$v" "$unit" "$samples" ""
}

# md_phase COL JOB PHASE DIR THREADS [PASSES] [untimed|timed] [REPEATS]: REPEATS (default 1)
# mdbench runs; the median figure (k ops/s) goes into RAW unless the mode is "untimed" (then
# one run, and only failures are recorded).
md_phase() {
  local col=$1 job=$2 phase=$3 dir=$4 t=$5 passes=${6:-1} mode=${7:-timed} repeats=${8:-1} out rc v samples="" i
  if [ -n "$COL_FAIL" ]; then na "$col" "$job" "$COL_FAIL"; return 1; fi
  for ((i = 0; i < repeats; i++)); do
    out=$(timeout -k 10 "$MD_TIMEOUT" "$WORK/mdbench" "$phase" "$dir" "$NFILES" "$t" "$passes" 2>&1)
    rc=$?
    if [ $rc = 124 ] || [ $rc = 137 ]; then
      COL_FAIL="mdbench $phase timed out after ${MD_TIMEOUT}s"; na "$col" "$job" "$COL_FAIL"; return 1
    fi
    if [ $rc != 0 ]; then
      na "$col" "$job" "$([ "$mode" = untimed ] && echo 'untimed first pass: ')$(tail -n 1 <<<"$out" | cut -c1-160)"
      return 1
    fi
    [ "$mode" = untimed ] && return 0
    v=$(sed -n 's/.*ops_per_s=\([0-9.]*\).*/\1/p' <<<"$out")
    samples="$samples $(awk -v x="$v" 'BEGIN { printf "%.3f", x / 1000 }')"
  done
  samples=${samples# }
  # shellcheck disable=SC2086
  v=$(python3 "$PERF/report.py" median $samples)
  log "$col $job: $v k ops/s ($samples)"
  record "$col" "$job" "$v" "k ops/s" "$([ "$repeats" -gt 1 ] && echo "$samples")" ""
}

ALL_JOBS="seqread_1m_1j seqread_1m_4j seqread_256k_1j seqread_256k_4j randread_4k_1j randread_4k_4j seqwrite_1m_1j
md_create_1t md_create_4t md_stat_warm_1t md_stat_warm_4t md_stat_cold_1t md_stat_cold_4t md_unlink_1t md_unlink_4t"
column_na() { local j; for j in $ALL_JOBS; do na "$1" "$j" "$2"; done; }

# run_column COL DIR REMOUNT_FN: every job on DIR. REMOUNT_FN makes the next stat "cold"
# (restarts a FUSE daemon; a no-op for native) and returns non-zero with REMOUNT_ERR on failure.
run_column() {
  local col=$1 d=$2 remount=$3 f=seq.dat bs j t job
  COL_FAIL=""
  log "== $col on $d"
  # Sequential write first: it also creates the file the read jobs read (through the mount).
  measure "$col" seqwrite_1m_1j GiB/s write_bw 1 "$PERF/fio/seq_write.fio" DIR="$d" FILE=$f BS=1M JOBS=1 SIZE=$SIZE_B
  local size read_fail=""
  size=$(stat -c %s "$d/$f" 2>/dev/null || echo 0)
  if [ -z "$COL_FAIL" ] && [ "$size" != "$SIZE_B" ]; then
    note "$col: the write job left $d/$f at $size bytes; wrote it with dd for the read jobs"
    dd if=/dev/zero of="$d/$f" bs=1M count="$SIZE_MB" conv=fsync status=none 2>"$WORK/dd.err"
    size=$(stat -c %s "$d/$f" 2>/dev/null || echo 0)
    [ "$size" = "$SIZE_B" ] || read_fail="no ${SIZE_MB} MiB input file: fio and dd could not write it ($(last_line "$WORK/dd.err"))"
  fi
  for bs in 1M 256K; do
    for j in 1 4; do
      job="seqread_${bs,,}_${j}j"
      if [ -n "$read_fail" ] && [ -z "$COL_FAIL" ]; then na "$col" "$job" "$read_fail"; continue; fi
      measure "$col" "$job" GiB/s read_bw "$REPEAT" "$PERF/fio/seq_read.fio" \
        DIR="$d" FILE=$f BS=$bs JOBS=$j SIZE=$((SIZE_B / j))
    done
  done
  for j in 1 4; do
    job="randread_4k_${j}j"
    if [ -n "$read_fail" ] && [ -z "$COL_FAIL" ]; then na "$col" "$job" "$read_fail"; continue; fi
    measure "$col" "$job" "k IOPS" read_iops 1 "$PERF/fio/rand_read.fio" \
      DIR="$d" FILE=$f BS=4k JOBS=$j SIZE=$SIZE_B RUNTIME="$RUNTIME"
  done
  [ -z "$COL_FAIL" ] && rm -f "$d/$f"
  # Metadata: create; stat warm (one untimed pass, then WARM_PASSES timed ones); remount
  # and drop caches; stat cold (one pass); unlink.
  for t in 1 4; do
    local md=$d/md-${t}t p
    if [ -z "$COL_FAIL" ] && ! mkdir -p "$md" 2>"$WORK/mkdir.err"; then
      for p in create stat_warm stat_cold unlink; do na "$col" "md_${p}_${t}t" "mkdir: $(last_line "$WORK/mkdir.err")"; done
      continue
    fi
    if md_phase "$col" "md_create_${t}t" create "$md" "$t"; then
      sleep "$TTL_SETTLE"
      md_phase "$col" "md_stat_warm_${t}t" stat "$md" "$t" 1 untimed \
        && md_phase "$col" "md_stat_warm_${t}t" stat "$md" "$t" "$WARM_PASSES" timed "$REPEAT"
      if [ -z "$COL_FAIL" ] && ! $remount; then COL_FAIL="remount for stat cold failed: $REMOUNT_ERR"; fi
      [ -z "$COL_FAIL" ] && drop_caches
      md_phase "$col" "md_stat_cold_${t}t" stat "$md" "$t" 1
      md_phase "$col" "md_unlink_${t}t" unlink "$md" "$t"
    else
      for p in stat_warm stat_cold unlink; do na "$col" "md_${p}_${t}t" "create failed"; done
    fi
    [ -z "$COL_FAIL" ] && rm -rf "$md"
  done
  return 0
}

REMOUNT_ERR=""
no_remount() { return 0; }  # native tmpfs: its dentries and inodes are the data, drop_caches cannot evict them

# ---------------------------------------------------------------- (a) native tmpfs
run_column native "$TMPFS/native" no_remount

# ---------------------------------------------------------------- (b) passthrough_hp
# Its defaults: splice read/write, multithreaded, attr/entry timeout 86400 s, keep_cache,
# writeback cache. "Cold" stat therefore needs a remount; it restarts the daemon.
start_pthp() {
  "$PTHP" --foreground "$TMPFS/native" "$MNT_PTHP" >"$WORK/pthp.log" 2>&1 &
  PTHP_PID=$!
  for _ in $(seq 100); do
    is_mounted "$MNT_PTHP" && return 0
    kill -0 "$PTHP_PID" 2>/dev/null || break
    sleep 0.1
  done
  REMOUNT_ERR="passthrough_hp did not mount: $(last_line "$WORK/pthp.log")"
  stop_pthp; return 1
}
stop_pthp() {
  [ -n "$PTHP_PID" ] || return 0
  unmount_fuse "$MNT_PTHP"  # passthrough_hp exits when its mount goes away
  stop_pid "$PTHP_PID"; PTHP_PID=""
}
remount_pthp() { stop_pthp; start_pthp; }
if [ -z "$PTHP" ]; then
  column_na pthp "$PTHP_FAIL"
elif start_pthp; then
  run_column pthp "$MNT_PTHP" remount_pthp
  stop_pthp
else
  column_na pthp "$REMOUNT_ERR"
fi

# ---------------------------------------------------------------- (c) ours over the embedded cluster
MASTER=""
start_cluster() {
  "$BIN/curvine-cluster" --data-dir "$TMPFS/cluster" --master-port 0 --worker-port 0 >"$WORK/cluster.log" 2>&1 &
  CLUSTER_PID=$!
  for _ in $(seq 300); do
    MASTER=$(sed -n 's/^ready master=\([^ ]*\).*/\1/p' "$WORK/cluster.log" | head -n 1)
    [ -n "$MASTER" ] && return 0
    kill -0 "$CLUSTER_PID" 2>/dev/null || { wait "$CLUSTER_PID"; local rc=$?; CLUSTER_PID=""
      OURS_FAIL="curvine-cluster exited ($rc) before 'ready': $(last_line "$WORK/cluster.log")"; return 1; }
    sleep 0.1
  done
  OURS_FAIL="curvine-cluster printed no 'ready master=' line in 30 s: $(last_line "$WORK/cluster.log")"
  stop_pid "$CLUSTER_PID"; CLUSTER_PID=""; return 1
}

# Variant configs. All three use 2 GiB blocks, so every benchmark file is one block and
# the rows differ only in the named factor.
cat >"$WORK/ours-shortcircuit.toml" <<'EOF'
[client]
block_size = "2GB"
EOF
cat >"$WORK/ours-tcp.toml" <<'EOF'
[client]
block_size = "2GB"
short_circuit = false
EOF
OURS_VARIANT=""
ours_args() {  # the curvine-fuse flags of a variant
  case $1 in
    ours_pt) echo "--conf $WORK/ours-shortcircuit.toml --passthrough auto" ;;
    ours_local) echo "--conf $WORK/ours-shortcircuit.toml --passthrough off" ;;
    ours_tcp) echo "--conf $WORK/ours-tcp.toml --passthrough off" ;;
  esac
}
start_ours() {
  local v=$1 args
  args=$(ours_args "$v")
  OURS_VARIANT=$v
  # shellcheck disable=SC2086
  "$BIN/curvine-fuse" --mnt-path "$MNT_OURS" --master-addrs "$MASTER" --web-port 0 $args \
    >>"$WORK/fuse-$v.log" 2>&1 &
  OURS_PID=$!
  for _ in $(seq 300); do
    [ "$(mount_type "$MNT_OURS")" = fuse.curvinefs ] && return 0
    if ! kill -0 "$OURS_PID" 2>/dev/null; then
      wait "$OURS_PID"; local rc=$?; OURS_PID=""
      REMOUNT_ERR="curvine-fuse $args exited ($rc): $(last_line "$WORK/fuse-$v.log")"; return 1
    fi
    sleep 0.1
  done
  REMOUNT_ERR="curvine-fuse $args: no fuse.curvinefs mount in 30 s: $(last_line "$WORK/fuse-$v.log")"
  stop_ours; return 1
}
stop_ours() {  # SIGTERM unmounts; fusermount3 if it did not
  [ -n "$OURS_PID" ] || { unmount_fuse "$MNT_OURS"; return 0; }
  stop_pid "$OURS_PID"; OURS_PID=""
  unmount_fuse "$MNT_OURS"
}
remount_ours() { stop_ours; start_ours "$OURS_VARIANT"; }

if [ -z "$OURS_FAIL" ]; then start_cluster && log "cluster ready: master $MASTER"; fi
for v in ours_pt ours_local ours_tcp; do
  if [ -n "$OURS_FAIL" ]; then column_na "$v" "$OURS_FAIL"; continue; fi
  if ! start_ours "$v"; then column_na "$v" "$REMOUNT_ERR"; continue; fi
  if ! mkdir -p "$MNT_OURS/bench-$v" 2>"$WORK/mkdir.err"; then
    column_na "$v" "mkdir on the mount failed: $(last_line "$WORK/mkdir.err")"; stop_ours; continue
  fi
  run_column "$v" "$MNT_OURS/bench-$v" remount_ours
  if is_mounted "$MNT_OURS"; then rm -rf "$MNT_OURS/bench-$v" 2>/dev/null || note "$v: could not remove bench-$v"; fi
  if [ -n "$OURS_PID" ] && ! kill -0 "$OURS_PID" 2>/dev/null; then
    note "$v: curvine-fuse died during the run: $(last_line "$WORK/fuse-$v.log")"
  fi
  stop_ours
done
stop_pid "$CLUSTER_PID"; CLUSTER_PID=""

# ---------------------------------------------------------------- report
DATE=$(date +%F); KERNEL=$(uname -r); NCPU=$(nproc)
NAME="$DATE-$KERNEL-${NCPU}cpu$([ $QUICK = 1 ] && echo -quick)"
mkdir -p "$PERF/results"
GIT="$(git rev-parse --short HEAD 2>/dev/null)$(git status --porcelain 2>/dev/null | grep -q . && echo ' (dirty tree)')"
M_DATE=$DATE M_KERNEL=$KERNEL M_NCPU=$NCPU M_QUICK=$QUICK M_GIT=$GIT M_NOTES=$NOTES \
M_COMMAND="bash perf/run.sh$([ $QUICK = 1 ] && echo ' --quick')" \
M_CPU=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1) \
M_MEM=$(awk '/MemTotal/ { printf "%.0f", $2 / 1048576 }' /proc/meminfo) \
M_LIBFUSE=$(pkg-config --modversion fuse3 2>/dev/null) M_FIO=$(fio --version 2>/dev/null) \
M_SWIFT=$(swift --version 2>/dev/null | head -n 1 | sed 's/ *(.*//') \
M_SIZE=$SIZE_MB M_NFILES=$NFILES M_RUNTIME=$RUNTIME M_REPEAT=$REPEAT \
M_TCP=$TCP_LIMIT M_TCP_SAMPLES=$TCP_SAMPLES M_TCP_NOTE=$TCP_NOTE \
python3 - "$WORK/meta.json" <<'EOF'
import json, os, sys
e = os.environ
json.dump({
    "date": e["M_DATE"], "kernel": e["M_KERNEL"], "ncpu": int(e["M_NCPU"]), "quick": e["M_QUICK"] == "1",
    "command": e["M_COMMAND"], "git": e["M_GIT"], "cpu_model": e["M_CPU"], "mem_gib": e["M_MEM"],
    "libfuse": e["M_LIBFUSE"], "fio": e["M_FIO"], "swift": e["M_SWIFT"],
    "size_mib": int(e["M_SIZE"]), "nfiles": int(e["M_NFILES"]), "runtime_s": int(e["M_RUNTIME"]),
    "repeat": int(e["M_REPEAT"]),
    "tcp_limit_gib_s": float(e["M_TCP"]) if e["M_TCP"] else None,
    "tcp_samples": e["M_TCP_SAMPLES"], "tcp_note": e["M_TCP_NOTE"],
    "notes": [l.rstrip("\n") for l in open(e["M_NOTES"]) if l.strip()],
}, open(sys.argv[1], "w"), indent=1)
EOF
echo
python3 "$PERF/report.py" table "$RAW" "$WORK/meta.json" "$PERF/results/$NAME.md" "$PERF/results/$NAME.tsv"
log "wrote perf/results/$NAME.md and perf/results/$NAME.tsv"
