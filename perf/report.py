#!/usr/bin/env python3
"""Helpers of perf/run.sh: read one fio JSON result, and turn the raw TSV into the report.

    report.py fio JSON read_bw|write_bw|read_iops
        Prints one number (GiB/s for *_bw, thousands of IOPS for read_iops). If fio reported
        an error or the file holds no result, prints the reason to stderr and exits 1.

    report.py table RAW_TSV META_JSON OUT_MD OUT_TSV
        Prints the table (figures, ratios, TCP limit, targets, notes) and writes it to OUT_MD;
        writes the raw numbers with the run's metadata to OUT_TSV.

RAW_TSV rows (no header): column, job, value ("n/a" or a number), unit, samples, note.
"""
import json
import os
import statistics
import sys

# (job id, label, unit). The order is the table's.
ROWS = [
    ("seqread_1m_1j", "seq read 1 MiB, 1 job", "GiB/s"),
    ("seqread_1m_4j", "seq read 1 MiB, 4 jobs", "GiB/s"),
    ("seqread_256k_1j", "seq read 256 KiB, 1 job", "GiB/s"),
    ("seqread_256k_4j", "seq read 256 KiB, 4 jobs", "GiB/s"),
    ("randread_4k_1j", "rand read 4 KiB, 1 job", "k IOPS"),
    ("randread_4k_4j", "rand read 4 KiB, 4 jobs", "k IOPS"),
    ("seqwrite_1m_1j", "seq write 1 MiB + fsync", "GiB/s"),
    ("md_create_1t", "create, 1 thread", "k ops/s"),
    ("md_create_4t", "create, 4 threads", "k ops/s"),
    ("md_stat_warm_1t", "stat warm, 1 thread", "k ops/s"),
    ("md_stat_warm_4t", "stat warm, 4 threads", "k ops/s"),
    ("md_stat_cold_1t", "stat cold, 1 thread", "k ops/s"),
    ("md_stat_cold_4t", "stat cold, 4 threads", "k ops/s"),
    ("md_unlink_1t", "unlink, 1 thread", "k ops/s"),
    ("md_unlink_4t", "unlink, 4 threads", "k ops/s"),
]
COLS = [
    ("native", "native"),
    ("pthp", "passthrough_hp"),
    ("ours_pt", "ours (pt)"),
    ("ours_local", "ours (local)"),
    ("ours_tcp", "ours (tcp)"),
]
OURS = ["ours_pt", "ours_local", "ours_tcp"]
SEQ = ["seqread_1m_1j", "seqread_1m_4j", "seqread_256k_1j", "seqread_256k_4j"]
RAND = ["randread_4k_1j", "randread_4k_4j"]

# The targets: (text, our column, rows, reference: a column or "tcp_limit", minimum ratio).
TARGETS = [
    ("kernel passthrough read >= 0.9x native", "ours_pt", SEQ + RAND, "native", 0.9),
    ("local normal-path seq read, 1 job >= 1.0x passthrough_hp", "ours_local",
     ["seqread_1m_1j", "seqread_256k_1j"], "pthp", 1.0),
    ("local normal-path seq read, 4 jobs >= 0.9x passthrough_hp", "ours_local",
     ["seqread_1m_4j", "seqread_256k_4j"], "pthp", 0.9),
    ("worker over TCP seq read >= 0.5x loopback TCP limit", "ours_tcp", SEQ, "tcp_limit", 0.5),
    ("4 KiB random read (normal path) >= 0.8x passthrough_hp", "ours_local", RAND, "pthp", 0.8),
    ("seq write with fsync >= 1.0x passthrough_hp", "ours_local", ["seqwrite_1m_1j"], "pthp", 1.0),
    ("stat warm >= 1.0x passthrough_hp", "ours_local", ["md_stat_warm_1t", "md_stat_warm_4t"], "pthp", 1.0),
    ("stat cold >= 0.8x passthrough_hp", "ours_local", ["md_stat_cold_1t", "md_stat_cold_4t"], "pthp", 0.8),
    ("create >= 0.5x passthrough_hp", "ours_local", ["md_create_1t", "md_create_4t"], "pthp", 0.5),
    ("unlink >= 0.5x passthrough_hp", "ours_local", ["md_unlink_1t", "md_unlink_4t"], "pthp", 0.5),
]


def fio_value(path, kind):
    text = open(path, errors="replace").read()
    start = text.find("{")  # fio may print warnings before the JSON
    if start < 0:
        sys.exit(print("fio wrote no JSON result", file=sys.stderr) or 1)
    try:
        data = json.loads(text[start:])
    except json.JSONDecodeError as e:
        sys.exit(print(f"fio JSON unreadable: {e}", file=sys.stderr) or 1)
    jobs = data.get("jobs") or []
    if not jobs:
        sys.exit(print("fio JSON has no jobs", file=sys.stderr) or 1)
    for j in jobs:
        if j.get("error"):
            err = j["error"]
            sys.exit(print(f"fio job error {err} ({os.strerror(err)})", file=sys.stderr) or 1)
    side = "write" if kind.startswith("write") else "read"
    s = jobs[0][side]
    if s.get("io_bytes", 0) <= 0:
        sys.exit(print(f"fio did no {side} I/O", file=sys.stderr) or 1)
    if kind.endswith("_bw"):
        print(f"{s['bw_bytes'] / (1 << 30):.4f}")
    else:
        print(f"{s['iops'] / 1000:.3f}")
    return 0


def fmt(v):
    if v is None:
        return None
    if v >= 100:
        return f"{v:.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def table(raw_path, meta_path, out_md, out_tsv):
    meta = json.load(open(meta_path))
    vals, notes_of = {}, {}
    raw_lines = []
    for line in open(raw_path):
        line = line.rstrip("\n")
        if not line:
            continue
        raw_lines.append(line)
        col, job, value, unit, samples, note = (line.split("\t") + [""] * 6)[:6]
        try:
            vals[(col, job)] = float(value)
        except ValueError:
            vals[(col, job)] = None
            notes_of[(col, job)] = note or "no figure"
    tcp = meta.get("tcp_limit_gib_s")

    # Footnotes: one number per distinct reason.
    reasons = []

    def foot(reason):
        if reason not in reasons:
            reasons.append(reason)
        return reasons.index(reason) + 1

    def cell(col, job):
        v = vals.get((col, job))
        if v is not None:
            return fmt(v)
        return f"n/a [{foot(notes_of.get((col, job), 'not run'))}]"

    def ratio(num_col, den_col, job):
        a, b = vals.get((num_col, job)), vals.get((den_col, job))
        return f"{a / b:.2f}" if a is not None and b else "-"

    header = ["job"] + [name for _, name in COLS] + ["ours/native (pt/local/tcp)", "ours/pthp (pt/local/tcp)"]
    body = []
    for job, label, unit in ROWS:
        row = [f"{label} ({unit})"] + [cell(c, job) for c, _ in COLS]
        row.append("/".join(ratio(o, "native", job) for o in OURS))
        row.append("/".join(ratio(o, "pthp", job) for o in OURS))
        body.append(row)
    widths = [max(len(r[i]) for r in [header] + body) for i in range(len(header))]

    def line(r):
        return "| " + " | ".join(
            (c.ljust(w) if i == 0 else c.rjust(w)) for i, (c, w) in enumerate(zip(r, widths))) + " |"

    out = []
    out.append(f"# curvine-fuse perf: {meta['date']}, kernel {meta['kernel']}, {meta['ncpu']} CPUs"
               f"{' (quick run)' if meta.get('quick') else ''}")
    out.append("")
    out.append(f"- command: `{meta['command']}` at {meta['git']}")
    out.append(f"- CPU: {meta['cpu_model']}; memory {meta['mem_gib']} GiB; libfuse {meta['libfuse']}; "
               f"fio {meta['fio']}; {meta['swift']}")
    out.append(f"- file size {meta['size_mib']} MiB (4-job seq reads: 4 disjoint quarters), random reads "
               f"{meta['runtime_s']} s, seq reads and warm stats median of {meta['repeat']}, metadata {meta['nfiles']} files; "
               f"page cache dropped before every fio job; native = tmpfs")
    out.append("")
    out.append(line(header))
    out.append("|" + "|".join(("-" * (w + 1) + ":") if i else ("-" * (w + 2)) for i, w in enumerate(widths)) + "|")
    for r in body:
        out.append(line(r))
    out.append("")
    if tcp is not None:
        tcp_read = vals.get(("ours_tcp", "seqread_1m_1j"))
        extra = (f"; ours (tcp) seq read 1 MiB, 1 job = {tcp_read / tcp:.2f}x of it" if tcp_read else "")
        out.append(f"Loopback TCP limit, single stream (perf/tcp_limit.py, 1 MiB calls): {tcp:.2f} GiB/s "
                   f"(best of runs: {meta.get('tcp_samples', '')}){extra}")
    else:
        out.append(f"Loopback TCP limit: n/a ({meta.get('tcp_note', 'not measured')})")
    out.append("")

    # Targets: each checked on the column the issue means; "-" when either side is missing.
    out.append("Targets (the issue's; ratio per row, PASS only if every row meets it):")
    out.append("")
    for text, col, jobs, ref, minimum in TARGETS:
        parts, ok, missing = [], True, False
        for job in jobs:
            a = vals.get((col, job))
            b = tcp if ref == "tcp_limit" else vals.get((ref, job))
            if a is None or not b:
                parts.append("-")
                missing = True
                continue
            r = a / b
            ok = ok and r >= minimum
            parts.append(f"{r:.2f}")
        status = "n/a" if missing and all(p == "-" for p in parts) else ("incomplete" if missing else
                                                                          ("PASS" if ok else "FAIL"))
        colname = dict(COLS)[col]
        out.append(f"- {text} [{colname}; {', '.join(jobs)}]: {' / '.join(parts)} -> {status}")
    out.append("")
    if reasons:
        out.append("Notes (why a figure is missing):")
        out.append("")
        for i, r in enumerate(reasons, 1):
            out.append(f"[{i}] {r}")
        out.append("")
    # A hint, not a verdict: passthrough serves reads from the backing file, so it should be
    # far ahead of the normal path on these rows; when it is not, it was probably not used.
    pt, loc = vals.get(("ours_pt", "seqread_1m_1j")), vals.get(("ours_local", "seqread_1m_1j"))
    rpt, rloc = vals.get(("ours_pt", "randread_4k_1j")), vals.get(("ours_local", "randread_4k_1j"))
    if pt and loc and rpt and rloc and pt < 1.5 * loc and rpt < 2 * rloc:
        out.append("Note: ours (pt) is close to ours (local) (seq read 1 MiB x1: "
                   f"{pt / loc:.2f}x, rand 4 KiB x1: {rpt / rloc:.2f}x): kernel passthrough was probably "
                   "not used; see perf/results/tmp/last-run/fuse-ours_pt.log.")
    for n in meta.get("notes", []):
        out.append(f"Note: {n}")
    text = "\n".join(out).rstrip() + "\n"
    sys.stdout.write(text)
    with open(out_md, "w") as f:
        f.write(text)
    with open(out_tsv, "w") as f:
        for k in sorted(meta):
            if k != "notes":
                f.write(f"# {k}={meta[k]}\n")
        f.write("column\tjob\tvalue\tunit\tsamples\tnote\n")
        for l in raw_lines:
            f.write(l + "\n")
        if tcp is not None:
            f.write(f"loopback\ttcp_limit\t{tcp:.4f}\tGiB/s\t{meta.get('tcp_samples', '')}\t\n")
    return 0


def median(argv):
    xs = [float(x) for x in argv]
    print(f"{statistics.median(xs):.4f}")
    return 0


def main():
    if len(sys.argv) >= 4 and sys.argv[1] == "fio":
        return fio_value(sys.argv[2], sys.argv[3])
    if len(sys.argv) == 6 and sys.argv[1] == "table":
        return table(*sys.argv[2:6])
    if len(sys.argv) >= 3 and sys.argv[1] == "median":
        return median(sys.argv[2:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
