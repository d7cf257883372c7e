#!/usr/bin/env bash
# perf/sweep.sh [--quick]: the parameter sweeps of perf/README.md ("Sweeps").
#
# For `ours (local)` (short-circuit, normal read path) and `ours (tcp)`
# ([client] short_circuit = false) it measures fio's sequential read, 1 MiB, 1 job
# (perf/fio/seq_read.fio, page cache dropped before every run) while varying one knob
# at a time, everything else at its default:
#   --io-threads      2 4 8 16 32    (--worker-threads fixed at 8)
#   --worker-threads  2 4 8 32       (io threads at the default; also 4 KiB random reads)
#   UNSTABLE_CURVINE_MAX_PREFETCH_WINDOW  0 (off) 4M 16M 64M 256M
# and writes perf/results/sweeps.md (plus sweeps.tsv with every sample).
#
# Same machinery as run.sh: a tmpfs, the embedded cluster (curvine-cluster), 2 GiB
# blocks, release binaries from $PERF_SCRATCH (default .build-perf; PERF_SKIP_BUILD=1
# skips the build). The file is written once per mode, then every cell remounts the
# daemon with its setting and reads it. Knobs (env): PERF_SIZE_MB, PERF_REPEAT,
# PERF_RUNTIME (random reads). Needs root; everything is stopped and unmounted on exit.
set -uo pipefail

PERF=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$PERF")
cd "$ROOT" || exit 1

QUICK=0
for a in "$@"; do
  case $a in
    --quick) QUICK=1 ;;
    -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "perf/sweep.sh: unknown argument '$a' (usage: bash perf/sweep.sh [--quick])" >&2; exit 2 ;;
  esac
done
if [ "$(id -u)" != 0 ]; then echo "perf/sweep.sh: run as root (FUSE mounts, drop_caches)" >&2; exit 1; fi
command -v fio >/dev/null || { echo "perf/sweep.sh: fio is missing (bash perf/run.sh installs it)" >&2; exit 1; }

if [ $QUICK = 1 ]; then SIZE_MB=${PERF_SIZE_MB:-256}; REPEAT=${PERF_REPEAT:-1}; RUNTIME=${PERF_RUNTIME:-3}
else SIZE_MB=${PERF_SIZE_MB:-1024}; REPEAT=${PERF_REPEAT:-3}; RUNTIME=${PERF_RUNTIME:-5}; fi
SIZE_B=$((SIZE_MB << 20))
SCRATCH=${PERF_SCRATCH:-.build-perf}
case $SCRATCH in /*) BIN=$SCRATCH/release ;; *) BIN=$ROOT/$SCRATCH/release ;; esac

WORK=$(mktemp -d /tmp/curvine-sweep.XXXXXX)
TMPFS=$WORK/tmpfs
MNT=$WORK/mnt
RAW=$WORK/sweeps.tsv
mkdir -p "$TMPFS" "$MNT"
printf 'knob\tvalue\tmode\tjob\tmedian\tunit\tsamples\n' >"$RAW"

log() { printf '[sweep %s] %s\n' "$(date +%T)" "$*" >&2; }
is_mounted() { awk -v m="$1" '$2 == m { f = 1 } END { exit !f }' /proc/mounts; }
drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }

CLUSTER_PID=""; FUSE_PID=""
stop_pid() {
  local pid=$1
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  return 0
}
stop_fuse() {
  stop_pid "$FUSE_PID"; FUSE_PID=""
  if is_mounted "$MNT"; then fusermount3 -u "$MNT" 2>/dev/null || fusermount3 -uz "$MNT" 2>/dev/null; fi
  return 0
}
cleanup() {
  set +e
  trap - EXIT INT TERM
  stop_fuse
  stop_pid "$CLUSTER_PID"
  is_mounted "$TMPFS" && { umount "$TMPFS" 2>/dev/null || umount -l "$TMPFS"; }
  mkdir -p "$PERF/results/tmp/last-sweep"
  cp "$WORK"/*.log "$PERF/results/tmp/last-sweep/" 2>/dev/null
  awk -v w="$WORK/" 'index($2, w) == 1 { f = 1 } END { exit !f }' /proc/mounts || rm -rf "$WORK"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

if [ "${PERF_SKIP_BUILD:-0}" != 1 ]; then
  log "swift build -c release --scratch-path $SCRATCH"
  swift build -c release --scratch-path "$SCRATCH" >"$WORK/swift-build.log" 2>&1 || { log "build failed: see $WORK/swift-build.log"; exit 1; }
fi
for b in curvine-fuse curvine-cluster; do [ -x "$BIN/$b" ] || { log "$BIN/$b is missing"; exit 1; }; done

mount -t tmpfs -o "size=$((SIZE_MB * 2 + 1024))m,mode=0755" sweep-tmpfs "$TMPFS" || { log "cannot mount a tmpfs"; exit 1; }
mkdir -p "$TMPFS/cluster"
"$BIN/curvine-cluster" --data-dir "$TMPFS/cluster" --master-port 0 --worker-port 0 >"$WORK/cluster.log" 2>&1 &
CLUSTER_PID=$!
MASTER=""
for _ in $(seq 300); do
  MASTER=$(sed -n 's/^ready master=\([^ ]*\).*/\1/p' "$WORK/cluster.log" | head -n 1)
  [ -n "$MASTER" ] && break
  kill -0 "$CLUSTER_PID" 2>/dev/null || break
  sleep 0.1
done
[ -n "$MASTER" ] || { log "curvine-cluster did not come up: $(tail -n 1 "$WORK/cluster.log")"; exit 1; }

printf '[client]\nblock_size = "2GB"\n' >"$WORK/local.toml"
printf '[client]\nblock_size = "2GB"\nshort_circuit = false\n' >"$WORK/tcp.toml"

# start_fuse MODE [ENV=VALUE] [flags...]: mounts with the mode's config.
start_fuse() {
  local mode=$1; shift
  local envs=()
  while [ $# -gt 0 ] && [[ $1 == *=* ]]; do envs+=("$1"); shift; done
  env "${envs[@]}" "$BIN/curvine-fuse" --mnt-path "$MNT" --master-addrs "$MASTER" --web-port 0 \
    --conf "$WORK/$mode.toml" --passthrough off "$@" >>"$WORK/fuse-$mode.log" 2>&1 &
  FUSE_PID=$!
  for _ in $(seq 300); do
    awk -v m="$MNT" '$2 == m && $3 == "fuse.curvinefs" { f = 1 } END { exit !f }' /proc/mounts && return 0
    kill -0 "$FUSE_PID" 2>/dev/null || break
    sleep 0.1
  done
  log "mount failed ($mode $*): $(tail -n 1 "$WORK/fuse-$mode.log")"
  stop_fuse; return 1
}

# fio_rate JOBFILE KIND VAR=VALUE...: one run after a cache drop; prints the figure.
fio_rate() {
  local jobfile=$1 kind=$2; shift 2
  drop_caches
  env "$@" timeout -k 10 300 fio --output-format=json "$jobfile" >"$WORK/fio.json" 2>"$WORK/fio.err" || return 1
  python3 "$PERF/report.py" fio "$WORK/fio.json" "$kind"
}

# cell KNOB VALUE MODE [ENV=VALUE] [flags...]: remount with the setting, measure, record.
cell() {
  local knob=$1 value=$2 mode=$3; shift 3
  if ! start_fuse "$mode" "$@"; then
    printf '%s\t%s\t%s\t%s\tn/a\t\tmount failed\n' "$knob" "$value" "$mode" seqread_1m_1j >>"$RAW"; return
  fi
  local s="" v
  for _ in $(seq "$REPEAT"); do
    v=$(fio_rate "$PERF/fio/seq_read.fio" read_bw DIR="$MNT/sweep" FILE=seq.dat BS=1M JOBS=1 SIZE=$SIZE_B) || { v=n/a; }
    s="$s${s:+ }$v"
  done
  # shellcheck disable=SC2086
  local med; med=$(python3 "$PERF/report.py" median $s 2>/dev/null || echo n/a)
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$knob" "$value" "$mode" seqread_1m_1j "$med" GiB/s "$s" >>"$RAW"
  log "$knob=$value $mode: seq read 1 MiB 1 job $med GiB/s ($s)"
  if [ "$knob" = worker_threads ]; then
    v=$(fio_rate "$PERF/fio/rand_read.fio" read_iops DIR="$MNT/sweep" FILE=seq.dat BS=4k JOBS=1 SIZE=$SIZE_B RUNTIME="$RUNTIME") || v=n/a
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$knob" "$value" "$mode" randread_4k_1j "$v" "k IOPS" "$v" >>"$RAW"
    log "$knob=$value $mode: rand read 4 KiB 1 job $v k IOPS"
  fi
  stop_fuse
}

for mode in local tcp; do
  # The file, written once per mode through a default mount (the tcp mode writes over
  # the worker socket, so its block is the one it will read remotely).
  start_fuse "$mode" || exit 1
  mkdir -p "$MNT/sweep"
  dd if=/dev/zero of="$MNT/sweep/seq.dat" bs=1M count="$SIZE_MB" conv=fsync status=none || { log "writing seq.dat failed"; exit 1; }
  stop_fuse
  for n in 2 4 8 16 32; do cell io_threads "$n" "$mode" --io-threads "$n" --worker-threads 8; done
  for n in 2 4 8 32; do cell worker_threads "$n" "$mode" --worker-threads "$n"; done
  for w in 0 4M 16M 64M 256M; do cell max_prefetch_window "$w" "$mode" UNSTABLE_CURVINE_MAX_PREFETCH_WINDOW="$w"; done
  start_fuse "$mode" && { rm -rf "$MNT/sweep"; stop_fuse; }
done

mkdir -p "$PERF/results"
GIT="$(git rev-parse --short HEAD 2>/dev/null)$(git status --porcelain 2>/dev/null | grep -q . && echo ' (dirty tree)')"
python3 - "$RAW" "$PERF/results/sweeps.md" "$PERF/results/sweeps.tsv" <<EOF
import csv, sys
raw, md, tsv = sys.argv[1:4]
rows = list(csv.DictReader(open(raw), delimiter="\t"))
open(tsv, "w").write(open(raw).read())
out = ["# curvine-fuse sweeps: $(date +%F), kernel $(uname -r), $(nproc) CPUs$([ $QUICK = 1 ] && echo ' (quick)')", "",
       "- command: \`bash perf/sweep.sh$([ $QUICK = 1 ] && echo ' --quick')\` at $GIT",
       "- file $SIZE_MB MiB, one 2 GiB block; seq read = fio 1 MiB, 1 job, median of $REPEAT; random 4 KiB reads $RUNTIME s;"
       " page cache dropped before every run; ours (local) = short-circuit normal path, ours (tcp) = short_circuit = false",
       "- the machine is shared and noisy: compare cells of one table, not across runs", ""]
titles = {"io_threads": "--io-threads (worker threads 8)", "worker_threads": "--worker-threads (io threads: the default)",
          "max_prefetch_window": "UNSTABLE_CURVINE_MAX_PREFETCH_WINDOW (0 = prefetch off; default 64M)"}
for knob in ["io_threads", "worker_threads", "max_prefetch_window"]:
    sel = [r for r in rows if r["knob"] == knob]
    if not sel: continue
    values = list(dict.fromkeys(r["value"] for r in sel))
    jobs = list(dict.fromkeys(r["job"] for r in sel))
    out.append("## " + titles[knob]); out.append("")
    head = ["value"] + [f"{m} {j}" for j in jobs for m in ("local", "tcp")]
    out.append("| " + " | ".join(head) + " |"); out.append("|" + "---|" * len(head))
    for v in values:
        cells = [v]
        for j in jobs:
            for m in ("local", "tcp"):
                r = [x for x in sel if x["value"] == v and x["mode"] == m and x["job"] == j]
                cells.append(f'{r[0]["median"]} {r[0]["unit"]}' if r else "-")
        out.append("| " + " | ".join(cells) + " |")
    out.append("")
open(md, "w").write("\n".join(out) + "\n")
print("\n".join(out))
EOF
log "wrote perf/results/sweeps.md and perf/results/sweeps.tsv"
