#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""Plot a benchmark run from its log (build/logs/<kernel>/tests.log).

    plot.py swap|vhost|dp|locality|mrc|e2e|mapper|remote LOG OUT.png

swap: the per-round out+in throughput of /dev/tsswap0, of the plain swap
partition and of dm-linear over it. vhost: IOPS of fio through
/dev/vhost-blk and natively, per queue depth and direction. dp: dpbench's
guest page-out with reconciliation off and on, per profile: throughput,
write latency, host swap-ins and bytes written to the guest image; and the
read-back's throughput; and, when the run had the end-to-end workload, its
plot (e2e below) in OUT-e2e.png. locality: the sequential read throughput
of a reconciled range before compaction, after it, after cleaning, and of a
range never reconciled. mrc: the swap-ins a miss-ratio curve predicted at
each memory.max against those measured, and swap throughput with the curves
on and off. e2e: dpe2e's whole workload per profile and configuration:
operations per second over time, the CDF of operation latency, and each
second's p99 and maximum latency. mapper: mapperbench's page cache swapped
out and in with the swap mapper off and on, per profile: swap-in
throughput, bytes the swap-out wrote to the store, swap-out time and its
CPU time with the share spent hashing. remote: swap throughput and
dpbench's page-out with the store local and over NVMe/TCP and NBD at each
round-trip time (medians of the rounds).
"""
import re
import statistics
import sys

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plot_swap(log, out):
    # rounds[(device, reclaimers)] = [(out, in), ...]
    rounds = {}
    ratio = None
    for line in open(log, errors="replace"):
        m = re.match(r"# (tsswap0|plain|linear): round \d+: reclaimers (\d+), "
                     r"out ([\d.]+) MiB/s, in ([\d.]+) MiB/s", line)
        if m:
            key = (m.group(1), int(m.group(2)))
            rounds.setdefault(key, []).append((float(m.group(3)),
                                               float(m.group(4))))
        m = re.match(r"swapbench ratio=([\d.]+)", line)
        if m:
            ratio = float(m.group(1))
    if not rounds or ratio is None:
        sys.exit("plot.py: no swapbench results in " + log)

    counts = sorted({n for _, n in rounds})
    fig, axes = plt.subplots(1, 2, figsize=(9, 4))
    devices = [d for d in (("tsswap0", "tab:blue"), ("linear", "tab:olive"),
                           ("plain", "tab:grey"))
               if any(k[0] == d[0] for k in rounds)]
    width = 0.8 / len(devices)
    for col, (ax, phase) in enumerate(zip(axes, ("swap-out", "swap-in"))):
        for i, (name, colour) in enumerate(devices):
            meds = [statistics.median(r[col] for r in rounds[(name, n)])
                    if (name, n) in rounds else 0 for n in counts]
            xs = [x + (i - (len(devices) - 1) / 2) * width
                  for x in range(len(counts))]
            ax.bar(xs, meds, width, color=colour, label=name)
        ax.set_xticks(range(len(counts)))
        ax.set_xticklabels([f"{n} reclaimer{'s' if n > 1 else ''}"
                            for n in counts])
        ax.set_ylabel("MiB/s (median of rounds)")
        ax.set_title(phase)
        ax.legend()
    fig.suptitle(f"swap throughput, tsswap0 against a plain partition "
                 f"(out+in ratio {ratio:.2f})")
    fig.tight_layout()
    fig.savefig(out, dpi=100)


def plot_vhost(log, out):
    rows = []
    for line in open(log, errors="replace"):
        m = re.match(r"# qd(\d+) (\w+): native (\d+) IOPS, vhost-blk (\d+) "
                     r"IOPS, ratio ([\d.]+); polled (\d+) IOPS, "
                     r"ratio ([\d.]+)", line)
        if m:
            rows.append((f"{m.group(2)} QD{m.group(1)}", int(m.group(3)),
                         int(m.group(4)), float(m.group(5)),
                         int(m.group(6)), float(m.group(7))))
    if not rows:
        sys.exit("plot.py: no vhostbench results in " + log)

    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.27
    xs = range(len(rows))
    ax.bar([x - width for x in xs], [r[1] for r in rows], width,
           color="tab:grey", label="native io_uring, O_DIRECT")
    ax.bar(xs, [r[2] for r in rows], width,
           color="tab:blue", label="through /dev/vhost-blk")
    ax.bar([x + width for x in xs], [r[4] for r in rows], width,
           color="tab:green", label="vhost-blk, busy polling")
    for x, r in zip(xs, rows):
        ax.text(x, r[2], f"{r[3]:.2f}", ha="center", va="bottom",
                fontsize=8)
        ax.text(x + width, r[4], f"{r[5]:.2f}", ha="center", va="bottom",
                fontsize=8)
    ax.set_xticks(list(xs))
    ax.set_xticklabels([r[0] for r in rows])
    ax.set_ylabel("IOPS (4 KiB)")
    ax.set_title("fio 4 KiB random I/O: vhost-blk against native")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=100)


def plot_dp(log, out):
    runs = {}       # (profile, mode) -> the phase lines' values
    results = {}    # profile -> the "dpbench PROFILE" line's values
    for line in open(log, errors="replace"):
        m = re.match(r"# dp (\w+) (off|on) (pageout|readback) (mib=.*)",
                     line)
        if m:
            prefix = "" if m.group(3) == "pageout" else "readback_"
            runs.setdefault((m.group(1), m.group(2)), {}).update(
                (prefix + k, v) for k, v in
                (kv.split("=", 1) for kv in m.group(4).split()))
        m = re.match(r"dpbench (\w+) (speedup=.*)", line)
        if m:
            results[m.group(1)] = dict(kv.split("=", 1)
                                       for kv in m.group(2).split())
    profiles = sorted({p for p, _ in runs}, key=lambda p: p != "hdd")
    if not profiles:
        sys.exit("plot.py: no dpbench results in " + log)

    panels = (("mib_s", "page-out MiB/s", 1, False),
              ("max_ms", "write latency max (p99 hatched), ms", 1, True),
              ("pswpin", "host swap-ins (pswpin)", 1, False),
              ("image_written", "image MiB written", 1 / 1048576, False),
              ("readback_mib_s", "read-back MiB/s", 1, False))
    fig, axes = plt.subplots(1, len(panels), figsize=(14, 3.8))
    width = 0.38
    xs = range(len(profiles))
    for ax, (key, title, scale, log_y) in zip(axes, panels):
        for i, (mode, colour) in enumerate((("off", "tab:grey"),
                                            ("on", "tab:blue"))):
            pos = [x + (i - 0.5) * width for x in xs]
            vals = [float(runs.get((p, mode), {}).get(key, 0)) * scale
                    for p in profiles]
            ax.bar(pos, vals, width, color=colour,
                   label=f"reconcile {mode}")
            if key == "max_ms":
                p99 = [float(runs.get((p, mode), {}).get("p99_ms", 0))
                       for p in profiles]
                ax.bar(pos, p99, width, color="none", edgecolor="black",
                       hatch="//")
        if log_y:
            ax.set_yscale("log")
        ax.set_xticks(list(xs))
        ax.set_xticklabels(profiles)
        ax.set_title(title, fontsize=9)
    axes[0].legend(fontsize=8)
    summary = ", ".join(f"{p}: speedup {results[p]['speedup']}, worst "
                        f"latency gain {results[p]['worst_latency_gain']}"
                        for p in profiles if p in results)
    fig.suptitle("dpbench guest page-out, reconciliation off and on"
                 + (f"\n{summary}" if summary else ""), fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    if any(line.startswith("# e2e ") for line in open(log, errors="replace")):
        plot_e2e(log, re.sub(r"(\.png)?$", "-e2e.png", out, count=1))


def plot_locality(log, out):
    reads = ("before", "compacted", "cleaned", "never")
    mib_s = ratios = None
    for line in open(log, errors="replace"):
        m = re.match(r"# localitybench MiB/s (.*)", line)
        if m:
            mib_s = dict(kv.split("=", 1) for kv in m.group(1).split())
        m = re.match(r"localitybench (cleaned=.*)", line)
        if m:
            ratios = dict(kv.split("=", 1) for kv in m.group(1).split())
    if not mib_s or not ratios:
        sys.exit("plot.py: no localitybench results in " + log)

    # A read that was not measured ("-") gets no bar, and says so.
    vals = [float(mib_s[r]) if mib_s.get(r, "-") != "-" else 0
            for r in reads]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.bar(range(len(reads)), vals,
           color=("tab:red", "tab:orange", "tab:blue", "tab:grey"))
    for x, r in enumerate(reads):
        ax.text(x, vals[x], mib_s.get(r, "-"), ha="center", va="bottom",
                fontsize=8)
    ax.set_xticks(range(len(reads)))
    ax.set_xticklabels(["before cleaning", "after compaction",
                        "after cleaning", "never reconciled"])
    ax.set_ylabel("MiB/s")
    ax.set_title("sequential reads of a reconciled range, HDD-like\n"
                 f"cleaned/never {ratios['cleaned']}, "
                 f"compacted/never {ratios['compacted']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=100)


def plot_mrc(log, out):
    sizes, rounds = [], {"mrc-on": [], "mrc-off": []}
    result = None
    for line in open(log, errors="replace"):
        m = re.match(r"# size (\d+) pages \(\+(\d+) MiB\): predicted "
                     r"(\d+) measured (\d+) error ([\d.]+)%", line)
        if m:
            sizes.append((int(m.group(1)) / 256, int(m.group(3)),
                          int(m.group(4)), float(m.group(5))))
        m = re.match(r"# (mrc-on|mrc-off): round \d+: .*out\+in "
                     r"([\d.]+) MiB/s", line)
        if m:
            rounds[m.group(1)].append(float(m.group(2)))
        m = re.match(r"mrcbench max_error=([\d.]+) overhead=([\d.]+)", line)
        if m:
            result = (float(m.group(1)), float(m.group(2)))
    if not sizes or result is None:
        sys.exit("plot.py: no mrcbench results in " + log)

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4),
                                  gridspec_kw={"width_ratios": [3, 2]})
    xs = [s[0] for s in sizes]
    ax.plot(xs, [s[1] for s in sizes], "o-", color="tab:blue",
            label=f"predicted from the curve at {xs[0]:.0f} MiB")
    ax.plot(xs, [s[2] for s in sizes], "s--", color="tab:grey",
            label="measured (pswpin)")
    for s in sizes:
        ax.annotate(f"{s[3]:.1f}%", (s[0], s[2]), textcoords="offset points",
                    xytext=(0, 8), ha="center", fontsize=8)
    ax.set_xlabel("memory.max (MiB)")
    ax.set_ylabel("swap-ins")
    ax.set_ylim(bottom=0)
    ax.set_title(f"Zipf workload: worst error {result[0]:.1f}%")
    ax.legend()
    width = 0.38
    for i, (name, colour) in enumerate((("mrc-on", "tab:blue"),
                                        ("mrc-off", "tab:grey"))):
        rx = [r + (i - 0.5) * width for r in range(len(rounds[name]))]
        ax2.bar(rx, rounds[name], width, color=colour, label=name)
    ax2.set_xlabel("round")
    ax2.set_ylabel("swap out+in MiB/s")
    ax2.set_title(f"throughput on/off {result[1]:.3f}")
    ax2.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=100)


def plot_e2e(log, out):
    series, cdf, results = {}, {}, {}
    for line in open(log, errors="replace"):
        m = re.match(r"dpbench e2e (\S+) (throughput=.*)", line)
        if m:
            results[m.group(1)] = dict(kv.split("=", 1)
                                       for kv in m.group(2).split())
        m = re.match(r"# e2e (\S+) (\S+) t=(\d+) ops=(\d+)"
                     r"(?: p50_ms=\S+ p99_ms=(\S+) max_ms=(\S+))?", line)
        if m:
            series.setdefault((m.group(1), m.group(2)), []).append(
                (int(m.group(3)), int(m.group(4)),
                 float(m.group(5) or "nan"), float(m.group(6) or "nan")))
        m = re.match(r"# e2e (\S+) (\S+) latency (.*)", line)
        if m:
            pts = [tuple(float(x) for x in kv.split(":"))
                   for kv in m.group(3).split()]
            cdf[(m.group(1), m.group(2))] = pts
    if not series:
        sys.exit("plot.py: no dpe2e results in " + log)
    profiles = sorted({k[0] for k in series})
    fig, axes = plt.subplots(3, len(profiles),
                             figsize=(6 * len(profiles), 12), squeeze=False)
    colours = {"off": "tab:grey", "on": "tab:blue", "map": "tab:red",
               "ctl-off": "tab:olive", "ctl-on": "tab:cyan",
               "ctl-map": "tab:orange", "ctl-map2": "tab:brown",
               "ctl-on2": "tab:purple", "ctl-off2": "tab:green"}
    for col, prof in enumerate(profiles):
        ax, ax2, ax3 = axes[0][col], axes[1][col], axes[2][col]
        for run, colour in colours.items():
            pts = series.get((prof, run))
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], "-",
                        color=colour, label=run)
                ax3.plot([p[0] for p in pts], [p[2] for p in pts], "-",
                         color=colour, label=f"{run} p99")
                ax3.plot([p[0] for p in pts], [p[3] for p in pts], ":",
                         color=colour)
            pts = cdf.get((prof, run))
            if pts:
                total = sum(p[1] for p in pts)
                acc, ys = 0, []
                for p in pts:
                    acc += p[1]
                    ys.append(acc / total)
                ax2.step([p[0] for p in pts], ys, where="post",
                         color=colour, label=run)
        ax.set_xlabel("second of the measured interval")
        ax.set_ylabel("operations per second")
        ax.set_ylim(bottom=0)
        ax.set_title(f"{prof}: throughput over time")
        ax.legend()
        ax2.set_xscale("log")
        ax2.set_xlabel("operation latency (ms)")
        ax2.set_ylabel("fraction of operations")
        ax2.set_title(f"{prof}: latency CDF")
        ax2.legend()
        ax3.set_yscale("log")
        ax3.set_xlabel("second of the measured interval")
        ax3.set_ylabel("latency (ms)")
        ax3.set_title(f"{prof}: p99 (solid) and max (dotted) per second")
        ax3.legend(fontsize=7)
    summary = "\n".join(f"{p}: throughput {r['throughput']}x, worst latency "
                        f"{r['worst_latency']}x, control {r['control']}; "
                        f"with the mapper {r.get('mapper', '-')}x, "
                        f"{r.get('mapper_worst_latency', '-')}x, "
                        f"{r.get('mapper_control', '-')}"
                        for p, r in results.items())
    if summary:
        fig.suptitle("dpe2e, reconciliation on (and with the swap mapper)"
                     " against off\n" + summary, fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=100)


def plot_mapper(log, out):
    runs = {}       # (profile, mode, phase) -> the phase lines' values
    result = None
    for line in open(log, errors="replace"):
        # Not the stats lines: debugfs names may be the same words.
        m = re.match(r"# mapper (\w+) (off|on) (\w+) (?!stats )(.*)", line)
        if m:
            runs.setdefault(m.group(1, 2, 3), {}).update(
                kv.split("=", 1) for kv in m.group(4).split() if "=" in kv)
        m = re.match(r"mapperbench (writes_avoided=.*)", line)
        if m:
            result = dict(kv.split("=", 1) for kv in m.group(1).split())
    profiles = sorted({k[0] for k in runs if k[2] == "swapin"},
                      key=lambda p: p != "hdd")
    if not profiles or result is None:
        sys.exit("plot.py: no mapperbench results in " + log)

    def value(profile, mode, phase, key, scale=1):
        v = runs.get((profile, mode, phase), {}).get(key, "-")
        return float(v) * scale if v != "-" else 0

    panels = (("swapin", "mib_s", "swap-in MiB/s", 1),
              ("swapin", "p99_ms", "swap-in touch latency p99, ms", 1),
              ("swapout", "store_written", "swap-out: store MiB written",
               1 / 1048576),
              ("swapout", "secs", "swap-out seconds", 1),
              ("swapout", "cpu_sys_ms", "swap-out CPU ms (hashing hatched)",
               1))
    fig, axes = plt.subplots(1, len(panels), figsize=(15, 3.8))
    width = 0.38
    xs = range(len(profiles))
    for ax, (phase, key, title, scale) in zip(axes, panels):
        for i, (mode, colour) in enumerate((("off", "tab:grey"),
                                            ("on", "tab:blue"))):
            pos = [x + (i - 0.5) * width for x in xs]
            vals = [value(p, mode, phase, key, scale) for p in profiles]
            ax.bar(pos, vals, width, color=colour, label=f"mapper {mode}")
            for x, v in zip(pos, vals):
                ax.text(x, v, f"{v:.4g}", ha="center", va="bottom",
                        fontsize=7)
            if key == "cpu_sys_ms":
                ax.bar(pos, [value(p, mode, phase, "hash_ms")
                             for p in profiles], width, color="none",
                       edgecolor="black", hatch="//")
        ax.set_xticks(list(xs))
        ax.set_xticklabels(profiles)
        ax.set_title(title, fontsize=9)
    axes[0].legend(fontsize=8)
    fig.suptitle("mapperbench: a guest's page cache swapped out and in, "
                 "swap mapper off and on\n"
                 + ", ".join(f"{k} {v}" for k, v in result.items()),
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=100)


def plot_remote(log, out):
    rounds = {}     # config -> [(swap, pageout), ...], in run order
    results = []
    for line in open(log, errors="replace"):
        m = re.match(r"# remote (\S+) round \d+: swap out\+in ([\d.]+) "
                     r"MiB/s, page-out ([\d.]+) MiB/s", line)
        if m:
            rounds.setdefault(m.group(1), []).append((float(m.group(2)),
                                                      float(m.group(3))))
        if line.startswith("remotebench "):
            result = line.split(None, 1)[1].strip()
            # run-tests repeats the last result line at the end.
            if result not in results:
                results.append(result)
    if not rounds:
        sys.exit("plot.py: no remotebench results in " + log)

    configs = list(rounds)
    colours = ["tab:grey" if c == "local" else
               "tab:blue" if c.startswith("nvme") else "tab:orange"
               for c in configs]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for col, (ax, title) in enumerate(zip(
            axes, ("swap out+in MiB/s (swapbench)",
                   "guest page-out MiB/s (dpbench, reconcile on)"))):
        meds = [statistics.median(r[col] for r in rounds[c])
                for c in configs]
        ax.bar(range(len(configs)), meds, color=colours)
        for x, v in enumerate(meds):
            ax.text(x, v, f"{v:.4g}", ha="center", va="bottom", fontsize=8)
        ax.set_xticks(range(len(configs)))
        ax.set_xticklabels([c.replace("-", "\n") + ("" if c == "local"
                                                     else " us")
                            for c in configs], fontsize=8)
        ax.set_title(title, fontsize=9)
    fig.suptitle("the store local, over NVMe/TCP and over NBD "
                 "(netem delay each way)\n" + "\n".join(results),
                 fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=100)


if __name__ == "__main__":
    plots = {"swap": plot_swap, "vhost": plot_vhost, "dp": plot_dp,
             "locality": plot_locality, "mrc": plot_mrc, "e2e": plot_e2e,
             "mapper": plot_mapper, "remote": plot_remote}
    if len(sys.argv) != 4 or sys.argv[1] not in plots:
        sys.exit(__doc__)
    plots[sys.argv[1]](sys.argv[2], sys.argv[3])
