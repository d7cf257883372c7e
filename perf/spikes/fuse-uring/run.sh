#!/bin/bash
# FUSE-over-io_uring spike: builds the two raw /dev/fuse daemons (classic read/write and
# io_uring), runs the same fio jobs on them (and, if available, on libfuse 3.14's
# passthrough_hp and on our curvine-fuse), restores enable_uring, prints one table.
#
#   sudo bash perf/spikes/fuse-uring/run.sh
#
# env: RUNTIME=10 (s per fio job)  REPS=3 (interleaved repetitions, the table shows medians)
#      COLS="classic uring pthp ours"  (pthp is built from Debian's fuse3 source like
#      perf/run.sh does; ours needs .build-perf/release/curvine-{fuse,cluster} already built)
#      EXTRA_COLS="uring_nopin classic1"  (ablations; empty by default)
#      BREAKDOWN=1  (per column and rep: perf sched/perf stat breakdown of one read; 0 = skip)
# The run recorded in REPORT.md: REPS=5 RUNTIME=10 EXTRA_COLS=uring_nopin (about 21 min).
# Output: the table on stdout; raw TSV, fio JSON and daemon logs in last-run/ (git-ignored).
#
# enable_uring is a global module parameter. It is set to Y only while the io_uring daemon
# mounts and answers INIT (the kernel latches fc->io_uring at INIT), then set back to its
# original value at once, and again on exit (trap), so other people's mounts made during the
# run are not offered FUSE_OVER_IO_URING.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
RUNTIME=${RUNTIME:-10}
REPS=${REPS:-3}
COLS=${COLS:-classic uring pthp ours}
EXTRA_COLS=${EXTRA_COLS:-}
FILE_MIB=1024
PARAM=/sys/module/fuse/parameters/enable_uring
BIN=$ROOT/.build-perf/release
OUT=$HERE/last-run            # logs and fio JSON of the last run (git-ignored)
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
[ -w "$PARAM" ] || { echo "$PARAM missing: kernel without CONFIG_FUSE_IO_URING?" >&2; exit 1; }

ORIG_URING=$(cat "$PARAM")
WORK=$(mktemp -d /tmp/fuse-uring-run.XXXXXX)
rm -rf "$OUT"; mkdir -p "$OUT"
PIDS=""        # every process we start (killed by id on exit)
log() { echo "[$(date +%T)] $*" >&2; }

cleanup() {
  echo "$ORIG_URING" >"$PARAM" 2>/dev/null
  local m p
  for m in "$WORK"/mnt-*; do
    mountpoint -q "$m" 2>/dev/null && { fusermount3 -u "$m" 2>/dev/null || umount -l "$m"; }
  done
  for p in $PIDS; do kill "$p" 2>/dev/null; done
  sleep 0.5
  for p in $PIDS; do kill -9 "$p" 2>/dev/null; done
  for m in "$WORK"/mnt-*; do mountpoint -q "$m" 2>/dev/null && umount -l "$m"; done
  mountpoint -q "$WORK/tmpfs" 2>/dev/null && umount -l "$WORK/tmpfs"
  rm -rf "$WORK"
  [ "$(cat "$PARAM")" = "$ORIG_URING" ] || echo "WARNING: could not restore $PARAM to $ORIG_URING" >&2
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------ build
for p in fio liburing-dev fuse3 gcc make; do
  dpkg -s "$p" >/dev/null 2>&1 || apt-get install -y -qq "$p" >/dev/null 2>&1 || { log "cannot install $p"; exit 1; }
done
make -s -C "$HERE" >"$OUT/build.log" 2>&1 || { cat "$OUT/build.log"; exit 1; }
log "built spike_classic, spike_uring"

mkdir -p "$WORK/tmpfs"
mount -t tmpfs -o size=$((FILE_MIB * 3 + 512))m,mode=0755 spike-tmpfs "$WORK/tmpfs" || { log "tmpfs mount failed"; exit 1; }

NA=""   # "col:reason" lines
na() { NA="$NA$1: $2"$'\n'; log "n/a $1: $2"; }
want() { case " $COLS $EXTRA_COLS " in *" $1 "*) return 0;; esac; return 1; }

# passthrough_hp from Debian's fuse3 3.14 source (as perf/run.sh does; never committed)
PTHP=""
if want pthp; then
  mkdir -p "$WORK/src"
  if (cd "$WORK/src" && apt-get source -qq fuse3 >"$OUT/apt-source.log" 2>&1) \
     && src=$(ls -d "$WORK"/src/fuse3-*/ | head -n1) \
     && g++ -O2 -std=c++11 -o "$WORK/passthrough_hp" "$src/example/passthrough_hp.cc" \
          $(pkg-config --cflags --libs fuse3) -lpthread >"$OUT/pthp-build.log" 2>&1; then
    PTHP=$WORK/passthrough_hp
    mkdir -p "$WORK/tmpfs/pthp-src"
    "$HERE/spike_classic" --dump "$FILE_MIB" >"$WORK/tmpfs/pthp-src/data"
    log "built passthrough_hp ($(basename "$src"))"
  else
    na pthp "could not build passthrough_hp (see last-run/apt-source.log, pthp-build.log)"
  fi
fi

# ------------------------------------------------------------------ columns
# All columns stay mounted for the whole run, so the fio jobs can be interleaved finely
# (job by job, column order rotated per repetition): the load from other people's builds
# changes within seconds, and this spreads it evenly over the columns.
declare -A CPID CMNT CFILE CKIND CLOG
wait_line() {  # wait_line LOG PATTERN PID: up to 20 s
  local i
  for i in $(seq 200); do
    grep -q "$2" "$1" 2>/dev/null && return 0
    kill -0 "$3" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}
wait_mount() {  # wait_mount MNT FSTYPE-PREFIX PID: up to 30 s
  local i
  for i in $(seq 300); do
    case "$(findmnt -n -o FSTYPE --mountpoint "$1" 2>/dev/null)" in "$2"*) return 0 ;; esac
    kill -0 "$3" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

CLUSTER_PID=""; MASTER=""
start_cluster() {
  mkdir -p "$WORK/tmpfs/cluster"
  "$BIN/curvine-cluster" --data-dir "$WORK/tmpfs/cluster" --master-port 0 --worker-port 0 >"$OUT/cluster.log" 2>&1 &
  CLUSTER_PID=$!; PIDS="$PIDS $CLUSTER_PID"
  wait_line "$OUT/cluster.log" '^ready master=' "$CLUSTER_PID" || return 1
  MASTER=$(sed -n 's/^ready master=\([^ ]*\).*/\1/p' "$OUT/cluster.log" | head -n1)
  printf '[client]\nblock_size = "2GB"\n' >"$WORK/ours.toml"
}

start_col() {  # start_col COL: mounts it, fills CPID/CMNT/CFILE/CKIND/CLOG; 1 if unavailable
  local col=$1 mnt=$WORK/mnt-$1 l=$OUT/daemon-$1.log pid
  mkdir -p "$mnt"; CMNT[$col]=$mnt; CLOG[$col]=$l; CKIND[$col]=raw
  case $col in
    classic|classic1|uring|uring_nopin)
      local cmd
      case $col in
        classic) cmd=("$HERE/spike_classic" --threads 2) ;;
        classic1) cmd=("$HERE/spike_classic" --threads 1) ;;
        uring) cmd=("$HERE/spike_uring") ;;
        uring_nopin) cmd=("$HERE/spike_uring" --no-pin) ;;
      esac
      [ "${col#uring}" != "$col" ] && echo Y >"$PARAM"
      "${cmd[@]}" --file-mib "$FILE_MIB" "$mnt" 2>"$l" &
      pid=$!; PIDS="$PIDS $pid"; CPID[$col]=$pid
      wait_line "$l" '^READY' "$pid"; local ok=$?
      echo "$ORIG_URING" >"$PARAM"     # the kernel latched fc->io_uring at INIT
      [ $ok = 0 ] || { na "$col" "daemon not ready: $(tail -n1 "$l")"; stop_col "$col"; return 1; }
      CFILE[$col]=$mnt/data ;;
    pthp)
      [ -n "$PTHP" ] || return 1
      CKIND[$col]=lib
      "$PTHP" --foreground "$WORK/tmpfs/pthp-src" "$mnt" >"$l" 2>&1 &
      pid=$!; PIDS="$PIDS $pid"; CPID[$col]=$pid
      wait_mount "$mnt" fuse "$pid" || { na pthp "did not mount: $(tail -n1 "$l")"; stop_col "$col"; return 1; }
      CFILE[$col]=$mnt/data ;;
    ours)
      CKIND[$col]=lib
      [ -x "$BIN/curvine-fuse" ] && [ -x "$BIN/curvine-cluster" ] || { na ours "no $BIN/curvine-{fuse,cluster} (build them with perf/run.sh first)"; return 1; }
      start_cluster || { na ours "cluster not ready: $(tail -n1 "$OUT/cluster.log")"; return 1; }
      "$BIN/curvine-fuse" --mnt-path "$mnt" --master-addrs "$MASTER" --web-port 0 \
        --conf "$WORK/ours.toml" --passthrough off >"$l" 2>&1 &
      pid=$!; PIDS="$PIDS $pid"; CPID[$col]=$pid
      wait_mount "$mnt" fuse.curvinefs "$pid" || { na ours "did not mount: $(tail -n1 "$l")"; stop_col "$col"; return 1; }
      CFILE[$col]=$mnt/spike/data
      mkdir -p "$mnt/spike" && "$HERE/spike_classic" --dump "$FILE_MIB" >"${CFILE[$col]}" && sync \
        || { na ours "writing the test file through the mount failed"; stop_col "$col"; return 1; } ;;
    *) na "$col" "unknown column"; return 1 ;;
  esac
  # the first 80 MiB read through the mount must equal the daemon's pattern
  if cmp -s <(dd if="${CFILE[$col]}" bs=1M count=80 iflag=direct 2>/dev/null) <("$HERE/spike_classic" --dump 80); then
    log "$col: mounted, content check OK"
  else
    na "$col" "content check FAILED (data read through the mount differs)"; stop_col "$col"; return 1
  fi
  return 0
}

stop_col() {
  local col=$1 pid=${CPID[$1]:-} mnt=${CMNT[$1]:-} i
  [ -n "$mnt" ] && mountpoint -q "$mnt" && { fusermount3 -u "$mnt" 2>/dev/null || umount -l "$mnt"; }
  if [ -n "$pid" ]; then
    for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
  fi
  CPID[$col]=""
}

# ------------------------------------------------------------------ measurement
proc_cpu() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }  # ticks, all threads
proc_ctxsw() { cat /proc/"$1"/task/*/status 2>/dev/null | awk '/ctxt_switches/ {s += $2} END {print s + 0}'; }
daemon_stats() {  # daemon_stats COL -> "reads read_bytes" of a raw daemon (SIGUSR1 -> STATS line)
  local l=${CLOG[$1]} n
  n=$(grep -c '^STATS' "$l")
  kill -USR1 "${CPID[$1]}" 2>/dev/null
  for _ in $(seq 50); do [ "$(grep -c '^STATS' "$l")" -gt "$n" ] && break; sleep 0.02; done
  grep -E '^STATS (classic|uring\(all\))' "$l" | tail -n1 | sed -E 's/.* reads=([0-9]+) read_bytes=([0-9]+).*/\1 \2/'
}

TSV=$OUT/results.tsv
printf 'rep\tcol\tjob\tiops\tMiBps\tclat_mean_us\tclat_p50_us\tclat_p99_us\tios\tfio_cpu_s\tdaemon_cpu_s\tdaemon_ctxsw\tdaemon_reads\tdaemon_read_MiB\tfio_MiB\tload1\n' >"$TSV"

JOBS="rand4k_direct_1j rand4k_direct_2j seq128k_buffered_1j seq128k_buffered_2j"
fio_args() {
  case $1 in
    rand4k_direct_1j) echo "--rw=randread --bs=4k --direct=1 --numjobs=1 --size=${FILE_MIB}m --time_based --runtime=$RUNTIME --randrepeat=0" ;;
    rand4k_direct_2j) echo "--rw=randread --bs=4k --direct=1 --numjobs=2 --size=${FILE_MIB}m --time_based --runtime=$RUNTIME --randrepeat=0" ;;
    # loops re-open the file (fio invalidates its cache on open), so every pass reaches the daemon
    seq128k_buffered_1j) echo "--rw=read --bs=128k --direct=0 --numjobs=1 --size=${FILE_MIB}m --loops=100000 --runtime=$RUNTIME" ;;
    seq128k_buffered_2j) echo "--rw=read --bs=128k --direct=0 --numjobs=2 --size=$((FILE_MIB / 2))m --offset_increment=$((FILE_MIB / 2))m --loops=100000 --runtime=$RUNTIME" ;;
  esac
}

run_job() {  # run_job REP COL JOB
  local rep=$1 col=$2 job=$3 base=$OUT/fio-$2-$3-rep$1 pid=${CPID[$2]}
  local c0 c1 x0 x1 s0="" s1="" load
  c0=$(proc_cpu "$pid"); x0=$(proc_ctxsw "$pid")
  [ "${CKIND[$col]}" = raw ] && s0=$(daemon_stats "$col")
  load=$(cut -d' ' -f1 /proc/loadavg)
  # shellcheck disable=SC2046
  /usr/bin/time -f '%U %S' -o "$base.time" \
    fio --name="$job" --filename="${CFILE[$col]}" --ioengine=psync --allow_file_create=0 --group_reporting \
      --output-format=json $(fio_args "$job") >"$base.json" 2>"$base.err"
  local rc=$?
  c1=$(proc_cpu "$pid"); x1=$(proc_ctxsw "$pid")
  [ "${CKIND[$col]}" = raw ] && s1=$(daemon_stats "$col")
  if [ $rc != 0 ] || ! kill -0 "$pid" 2>/dev/null; then
    na "$col/$job/rep$rep" "fio rc=$rc: $(tail -n1 "$base.err")"; return 1
  fi
  python3 - "$base.json" "$base.time" "$rep" "$col" "$job" "$c0" "$c1" "$x0" "$x1" "$s0" "$s1" "$load" >>"$TSV" <<'PY'
import json, sys
js, tf, rep, col, job, c0, c1, x0, x1, s0, s1, load = sys.argv[1:]
r = json.load(open(js))["jobs"][0]["read"]
u, s = map(float, open(tf).read().split()[-2:])
cl = r["clat_ns"]; pct = cl.get("percentile", {})
tick = 100.0
dr = dmb = ""
if s0 and s1:
    (r0, b0), (r1, b1) = map(int, s0.split()), map(int, s1.split())
    dr, dmb = str(r1 - r0), "%.1f" % ((b1 - b0) / 2**20)
print("\t".join([rep, col, job, "%.0f" % r["iops"], "%.1f" % (r["bw_bytes"] / 2**20),
                 "%.2f" % (cl["mean"] / 1e3), "%.2f" % (pct.get("50.000000", 0) / 1e3),
                 "%.2f" % (pct.get("99.000000", 0) / 1e3), str(r["total_ios"]), "%.2f" % (u + s),
                 "%.2f" % ((int(c1) - int(c0)) / tick), str(int(x1) - int(x0)), dr, dmb,
                 "%.1f" % (r["io_bytes"] / 2**20), load]))
PY
}

ALLCOLS=""
for col in $COLS $EXTRA_COLS; do start_col "$col" && ALLCOLS="$ALLCOLS $col"; done
grep -h '^READY' "$OUT"/daemon-*.log >"$OUT/ready-lines.txt" 2>/dev/null
[ -n "$ALLCOLS" ] || { log "nothing mounted"; exit 1; }
log "columns:$ALLCOLS; $REPS reps x 4 jobs x ${RUNTIME}s each; load: $(cat /proc/loadavg)"
# Breakdown (BREAKDOWN=0 skips it): per column and repetition, a 1-job O_DIRECT 4 KiB random
# read with a system-wide `perf sched record` plus `perf stat` counts of the daemon's syscalls
# and of fio's pread64 calls over the same 1.5 s, summarised per read by sched_breakdown.py.
# Tracing every context switch slows all columns a little: compare columns with each other.
BD=$OUT/breakdown.jsonl; : >"$BD"
breakdown_col() {  # breakdown_col REP COL
  local rep=$1 col=$2 fpid jpid spid1 spid2 sc rd
  fio --name=bd --filename="${CFILE[$col]}" --ioengine=psync --direct=1 --rw=randread --bs=4k --size=${FILE_MIB}m \
    --time_based --runtime=4 --randrepeat=0 --output-format=json >"$OUT/bd-fio-$col-rep$rep.json" 2>/dev/null &
  fpid=$!
  sleep 1
  jpid=$(pgrep -P "$fpid" | head -n1); [ -n "$jpid" ] || jpid=$fpid
  perf stat -x, -e raw_syscalls:sys_enter -p "${CPID[$col]}" -o "$WORK/bd-d.txt" -- sleep 1.5 >/dev/null 2>&1 &
  spid1=$!
  perf stat -x, -e syscalls:sys_enter_pread64 -p "$jpid" -o "$WORK/bd-f.txt" -- sleep 1.5 >/dev/null 2>&1 &
  spid2=$!
  perf sched record -a -o "$WORK/sched.data" -- sleep 1.5 >/dev/null 2>&1
  wait "$spid1" "$spid2" "$fpid"
  perf sched timehist -i "$WORK/sched.data" >"$WORK/sched.txt" 2>/dev/null
  sc=$(awk -F, '/raw_syscalls/ {print $1}' "$WORK/bd-d.txt")
  rd=$(awk -F, '/pread64/ {print $1}' "$WORK/bd-f.txt")
  printf '{"col": "%s", "rep": %s, "bd": %s}\n' "$col" "$rep" \
    "$(python3 "$HERE/sched_breakdown.py" "$WORK/sched.txt" "${CPID[$col]}" "$sc" "$rd")" >>"$BD"
  rm -f "$WORK/sched.data" "$WORK/sched.txt"
}
HAVE_PERF=0
[ "${BREAKDOWN:-1}" = 1 ] && command -v perf >/dev/null && HAVE_PERF=1

rot() { local n=$1; shift; local a=("$@") i; for i in $(seq 0 $(($# - 1))); do echo -n "${a[$(((i + n) % ${#a[@]}))]} "; done; }
for rep in $(seq "$REPS"); do
  for job in $JOBS; do
    # shellcheck disable=SC2086
    for col in $(rot $((rep - 1)) $ALLCOLS); do
      [ -n "${CPID[$col]}" ] || continue
      log "rep $rep $job $col"
      run_job "$rep" "$col" "$job"
    done
  done
  if [ $HAVE_PERF = 1 ]; then
    # shellcheck disable=SC2086
    for col in $(rot $((rep - 1)) $ALLCOLS); do
      [ -n "${CPID[$col]}" ] || continue
      log "rep $rep breakdown $col"
      breakdown_col "$rep" "$col"
    done
  fi
done

for col in $ALLCOLS; do stop_col "$col"; done
[ -n "$CLUSTER_PID" ] && kill "$CLUSTER_PID" 2>/dev/null && wait "$CLUSTER_PID" 2>/dev/null; CLUSTER_PID=""
grep -h '^STATS' "$OUT"/daemon-*.log >"$OUT/daemon-stats.txt" 2>/dev/null
dmesg | tail -n 40 | grep -iE 'fuse|uring' >"$OUT/dmesg-tail.txt" || true

# ------------------------------------------------------------------ table
python3 - "$TSV" "$ALLCOLS" "$RUNTIME" "$REPS" <<'EOF' | tee "$OUT/table.md"
import csv, sys, statistics as st
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
cols = sys.argv[2].split(); runtime, reps = sys.argv[3], sys.argv[4]
names = {"classic": "raw classic (2 thr)", "classic1": "raw classic (1 thr)", "uring": "raw io_uring",
         "uring_nopin": "raw io_uring, unpinned", "pthp": "passthrough_hp 3.14", "ours": "curvine-fuse (local)"}
jobs = ["rand4k_direct_1j", "rand4k_direct_2j", "seq128k_buffered_1j", "seq128k_buffered_2j"]
cols = [c for c in cols if any(r["col"] == c for r in rows)]
def med(vals):
    return st.median(vals) if vals else None
def cell(job, col, key, fmt, scale=1.0):
    v = [float(r[key]) * scale for r in rows if r["job"] == job and r["col"] == col and r[key] != ""]
    if not v: return "n/a"
    m = med(v)
    return (fmt % m) + (" (%s–%s)" % (fmt % min(v), fmt % max(v)) if len(v) > 1 else "")
def cpu_us(job, col):
    v = []
    for r in rows:
        if r["job"] == job and r["col"] == col:
            v.append((float(r["fio_cpu_s"]) + float(r["daemon_cpu_s"])) * 1e6 / max(1, int(r["ios"])))
    return ("%.1f" % med(v)) if v else "n/a"
print(f"median of {reps} interleaved runs (min–max), {runtime} s each, fio psync, 1 GiB file\n")
hdr = "| job | metric | " + " | ".join(names.get(c, c) for c in cols) + " |"
print(hdr); print("|" + "---|" * (len(cols) + 2))
for job in jobs:
    if job.startswith("rand"):
        print(f"| {job} | k IOPS | " + " | ".join(cell(job, c, "iops", "%.1f", 1e-3) for c in cols) + " |")
    else:
        print(f"| {job} | MiB/s | " + " | ".join(cell(job, c, "MiBps", "%.0f") for c in cols) + " |")
    print(f"| | clat mean µs | " + " | ".join(cell(job, c, "clat_mean_us", "%.1f") for c in cols) + " |")
    print(f"| | clat p50 µs | " + " | ".join(cell(job, c, "clat_p50_us", "%.1f") for c in cols) + " |")
    print(f"| | clat p99 µs | " + " | ".join(cell(job, c, "clat_p99_us", "%.1f") for c in cols) + " |")
    print(f"| | CPU µs / read (fio + daemon) | " + " | ".join(cpu_us(job, c) for c in cols) + " |")
    cs = []
    for c in cols:
        v = [int(r["daemon_ctxsw"]) / max(1, int(r["ios"])) for r in rows if r["job"] == job and r["col"] == c]
        cs.append("%.2f" % med(v) if v else "n/a")
    print(f"| | daemon ctx switches / read | " + " | ".join(cs) + " |")
EOF
if [ -s "$BD" ]; then
  echo
  python3 - "$BD" <<'EOF' | tee -a "$OUT/table.md"
import json, sys
names = {"classic": "raw classic (2 thr)", "classic1": "raw classic (1 thr)", "uring": "raw io_uring",
         "uring_nopin": "raw io_uring, unpinned", "pthp": "passthrough_hp 3.14", "ours": "curvine-fuse (local)"}
import statistics as st
raw = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
cols = []
for r in raw:
    if r["col"] not in cols: cols.append(r["col"])
def medk(col, k):
    v = [r["bd"][k] for r in raw if r["col"] == col and isinstance(r["bd"].get(k), (int, float))]
    if not v: return "n/a"
    m = st.median(v)
    return ("%.2f" % m if m < 100 else "%.0f" % m) + (" (%s–%s)" % (("%.1f" % min(v)), ("%.1f" % max(v))) if len(v) > 1 and k != "reads_per_s" else "")
rows = [{"col": c} for c in cols]
keys = [("reads_per_s", "reads/s while traced"), ("cycle_measured_us", "µs per read (1/rate)"),
        ("fio_run_us", "fio on CPU (app side: syscall, queue, copy-out, return)"),
        ("daemon_sched_delay_us", "daemon woken -> on CPU"),
        ("daemon_run_us", "daemon on CPU (fetch + handle + reply)"),
        ("fio_sched_delay_us", "fio woken -> on CPU"), ("cycle_sum_us", "sum of the four"),
        ("daemon_schedins_per_read", "daemon sched-ins / read"), ("fio_schedins_per_read", "fio sched-ins / read"),
        ("daemon_on_fio_cpu_pct", "daemon ran on fio's CPU (%)"),
        ("daemon_syscalls_per_read", "daemon syscalls / read")]
print("breakdown per read: median over reps (min–max), 1 job O_DIRECT 4 KiB, perf sched timehist over 1.5 s (tracing on)\n")
print("| per read | " + " | ".join(names.get(r["col"], r["col"]) for r in rows) + " |")
print("|" + "---|" * (len(rows) + 1))
for k, label in keys:
    print(f"| {label} | " + " | ".join(medk(r["col"], k) for r in rows) + " |")
EOF
fi
echo
echo "raw daemons: requests reaching the daemon vs fio reads (direct: must match; buffered: MiB served >= MiB read)"
awk -F'\t' 'NR > 1 && $13 != "" {printf "  rep %s %-12s %-20s fio ios %9s  daemon READs %9s  fio MiB %8.0f  daemon MiB %8.0f\n", $1, $2, $3, $9, $13, $15, $14}' "$TSV"
[ -s "$OUT/ready-lines.txt" ] && { echo; echo "io_uring daemon INIT:"; sed 's/^/  /' "$OUT/ready-lines.txt" | sort -u; }
[ -n "$NA" ] && { echo; echo "not measured:"; printf '%s' "$NA" | sed 's/^/  /'; }
echo; echo "enable_uring restored to: $ORIG_URING (raw TSV and logs: $OUT)"
