#!/usr/bin/env python3
"""Per-read CPU-timeline breakdown of a 1-job O_DIRECT 4 KiB random-read run.

Input: `perf sched timehist` text of a system-wide `perf sched record`, the daemon's pid,
and optionally the daemon's syscall count and fio's pread64 count (both perf stat, same
window). With the pread64 count, that is the number of reads; otherwise fio's sched-ins.
With one synchronous reader, each read is one cycle:
  fio runs (syscall entry, request queued, daemon woken; later: reply copied, return, next
  submission) -> daemon thread waits for a CPU ("sched delay") -> daemon runs (fetch the
  request, handle it, send the reply, wake fio, block again) -> fio waits for a CPU -> ...
so   cycle ~= fio run + daemon delay + daemon run + fio delay   (per read, averaged).
Prints one JSON object.
"""
import json
import re
import sys

LINE = re.compile(r"^\s*([\d.]+)\s+\[(\d+)\]\s+(.*?)\[(\d+)(?:/(\d+))?\]\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s*$")


def main():
    path, dpid = sys.argv[1], int(sys.argv[2])
    def num(i):
        try:
            return int(sys.argv[i])
        except (IndexError, ValueError):
            return None
    syscalls, preads = num(3), num(4)
    ev = []
    for line in open(path, errors="replace"):
        m = LINE.match(line)
        if not m:
            continue
        t, cpu, comm, tid, pid, wait, sch, run = m.groups()
        tid = int(tid)
        pid = int(pid) if pid else tid
        ev.append((float(t), int(cpu), comm.strip(), tid, pid, float(wait) * 1e3, float(sch) * 1e3, float(run) * 1e3))
    # the fio job = the 'fio' task with most sched-ins
    fio_counts = {}
    for e in ev:
        if e[2].startswith("fio"):
            fio_counts[e[3]] = fio_counts.get(e[3], 0) + 1
    if not fio_counts:
        print(json.dumps({"error": "no fio events"}))
        return
    fio_tid = max(fio_counts, key=fio_counts.get)
    fio = [e for e in ev if e[3] == fio_tid]
    dmn = [e for e in ev if e[4] == dpid or e[3] == dpid]
    reads = preads if preads else len(fio)
    if reads == 0 or not dmn:
        print(json.dumps({"error": "no events", "reads": reads, "daemon_events": len(dmn)}))
        return
    span = fio[-1][0] - fio[0][0]
    # CPU of fio's latest run, to see whether the daemon ran on the same CPU
    allev = sorted([(e[0], "f", e[1]) for e in fio] + [(e[0], "d", e[1]) for e in dmn])
    last_fio_cpu, same, other = None, 0, 0
    for _, who, cpu in allev:
        if who == "f":
            last_fio_cpu = cpu
        elif last_fio_cpu is not None:
            if cpu == last_fio_cpu:
                same += 1
            else:
                other += 1
    out = {
        "window_s": round(span, 3),
        "reads": reads,
        "fio_schedins_per_read": round(len(fio) / reads, 2),
        "reads_per_s": round(reads / span) if span > 0 else None,
        "fio_run_us": round(sum(e[7] for e in fio) / reads, 2),
        "fio_sched_delay_us": round(sum(e[6] for e in fio) / reads, 2),
        "daemon_run_us": round(sum(e[7] for e in dmn) / reads, 2),
        "daemon_sched_delay_us": round(sum(e[6] for e in dmn) / reads, 2),
        "daemon_schedins_per_read": round(len(dmn) / reads, 2),
        "daemon_threads_seen": len({e[3] for e in dmn}),
        "daemon_on_fio_cpu_pct": round(100.0 * same / max(1, same + other), 1),
    }
    out["cycle_sum_us"] = round(out["fio_run_us"] + out["fio_sched_delay_us"] + out["daemon_run_us"]
                                + out["daemon_sched_delay_us"], 2)
    if out["reads_per_s"]:
        out["cycle_measured_us"] = round(1e6 / out["reads_per_s"], 2)
    if syscalls is not None:
        out["daemon_syscalls_per_read"] = round(syscalls / reads, 2)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
