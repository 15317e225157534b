#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""Plot a benchmark run from its log (build/logs/<kernel>/tests.log).

    plot.py swap LOG OUT.png

For swap: the per-round out+in throughput of /dev/tsswap0 and of the plain
swap partition, and their medians.
"""
import re
import sys

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plot_swap(log, out):
    rounds = {"tsswap0": [], "plain": []}
    ratio = None
    for line in open(log, errors="replace"):
        m = re.match(r"# (tsswap0|plain): round \d+: out ([\d.]+) MiB/s, "
                     r"in ([\d.]+) MiB/s, out\+in ([\d.]+) MiB/s", line)
        if m:
            rounds[m.group(1)].append(tuple(float(x) for x in m.groups()[1:]))
        m = re.match(r"swapbench ratio=([\d.]+)", line)
        if m:
            ratio = float(m.group(1))
    if not rounds["tsswap0"] or ratio is None:
        sys.exit("plot.py: no swapbench results in " + log)

    fig, ax = plt.subplots(figsize=(7, 4))
    width = 0.38
    for i, (name, colour) in enumerate((("tsswap0", "tab:blue"),
                                        ("plain", "tab:grey"))):
        xs = [r + (i - 0.5) * width for r in range(len(rounds[name]))]
        ax.bar(xs, [r[2] for r in rounds[name]], width, color=colour,
               label=f"{name} (out+in)")
    ax.set_xticks(range(len(rounds["tsswap0"])))
    ax.set_xticklabels([f"round {r}" for r in range(len(rounds["tsswap0"]))])
    ax.set_ylabel("MiB/s")
    ax.set_title(f"swap-out + swap-in throughput, ratio of medians {ratio:.2f}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=100)


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] != "swap":
        sys.exit(__doc__)
    plot_swap(sys.argv[2], sys.argv[3])
