#!/usr/bin/python3
"""Turns simdbn_bench JSON into a markdown report and a PNG chart of the speed-ups.

Usage: bench_report.py [--md report.md] [--png speedup.png] [--stat median|min] RESULTS.json ...

Each case's time is the median (or, with --stat min, the best) of all its repetitions across the
given files (one file per round, or one file holding --benchmark_repetitions runs). On a machine
shared with other work, min estimates the uncontended speed; median is the default. GB/s follow the binary's traffic model
(the "traffic_bytes" counter: bytes one call must move), so simdbn, oneDNN and the copy of the
same bytes are directly comparable.
"""

import argparse
import collections
import json
import math
import statistics
import sys

TIME_UNITS = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}
TIME_SUFFIXES = ("real_time", "manual_time", "process_time")
PLAIN_LAYOUTS = ("NCHW", "NHWC")
NET_ORDER = {"ResNet-50": 0, "MobileNetV2": 1, "odd": 2}
OP_ORDER = {"Inference": 0, "Training": 1, "Backward": 2}  # pipeline order; others follow


def op_key(op):
    return OP_ORDER.get(op, len(OP_ORDER)), op


def parse_name(name):
    """'Inference/simdbn/NHWC/N32_C256_S56x56/threads:2/real_time' -> fields (None if foreign)."""
    parts = [p for p in name.split("/")
             if p not in TIME_SUFFIXES and not p.startswith(("repeats:", "min_time:"))]
    if not parts or not parts[-1].startswith("threads:"):
        return None
    threads = int(parts[-1].split(":")[1])
    if parts[0] == "Copy" and len(parts) == 3:
        return {"op": "Copy", "lib": None, "layout": None, "shape": parts[1], "threads": threads}
    if len(parts) == 5:
        return {"op": parts[0], "lib": parts[1], "layout": parts[2], "shape": parts[3],
                "threads": threads}
    return None


def shape_key(shape):
    """'N32_C256_S56x56' -> (32, 256, 3136) for sorting."""
    n, c, s = shape.split("_")
    spatial = math.prod(int(d) for d in s[1:].split("x"))
    return int(n[1:]), -spatial, int(c[1:])


class Case:
    stat = statistics.median

    def __init__(self):
        self.seconds = []
        self.cpu_seconds = []
        self.traffic = 0.0
        self.tensor = 0.0
        self.net = ""
        self.impl = ""

    @property
    def median(self):
        return Case.stat(self.seconds)

    @property
    def gbps(self):
        return self.traffic / self.median / 1e9

    @property
    def cv(self):
        if len(self.seconds) < 2:
            return None
        return statistics.stdev(self.seconds) / statistics.mean(self.seconds)


def load(paths):
    cases = collections.defaultdict(Case)
    contexts, errors = [], {}
    for path in paths:
        with open(path) as f:
            data = json.load(f)
        contexts.append(data.get("context", {}))
        entries = data.get("benchmarks", [])
        has_iterations = any(b.get("run_type", "iteration") == "iteration" for b in entries)
        for b in entries:
            # Runs themselves where present; a file with only aggregates contributes its medians.
            if has_iterations and b.get("run_type", "iteration") != "iteration":
                continue
            if not has_iterations and b.get("aggregate_name") != "median":
                continue
            fields = parse_name(b.get("run_name", b["name"]))
            if fields is None:
                continue
            key = tuple(fields[k] for k in ("op", "lib", "layout", "shape", "threads"))
            if b.get("error_occurred"):
                errors[key] = b.get("error_message", "error")
                continue
            case = cases[key]
            case.seconds.append(b["real_time"] * TIME_UNITS[b.get("time_unit", "ns")])
            case.cpu_seconds.append(b["cpu_time"] * TIME_UNITS[b.get("time_unit", "ns")])
            case.traffic = b["traffic_bytes"]
            case.tensor = b["tensor_bytes"]
            case.net, _, case.impl = b.get("label", "").partition(";")
    return cases, contexts, errors


def llc_bytes(context):
    if "llc_bytes" in context:
        return int(context["llc_bytes"])
    levels = [c for c in context.get("caches", []) if c.get("type") != "Instruction"]
    return max((c["size"] for c in levels), default=32 << 20)


def geomean(values):
    values = [v for v in values if v is not None and v > 0]
    if not values:
        return None
    return math.exp(sum(math.log(v) for v in values) / len(values))


def build_rows(cases, llc):
    """One row per (op, shape, plain layout, threads) where simdbn ran."""
    rows = []
    for (op, lib, layout, shape, threads), case in cases.items():
        if lib != "simdbn" or layout not in PLAIN_LAYOUTS:
            continue
        onednn = cases.get((op, "onednn", layout, shape, threads))
        copy = cases.get(("Copy", None, None, shape, threads))
        blocked = [c for (o, l, lay, s, t), c in cases.items()
                   if o == op and l == "onednn" and lay not in PLAIN_LAYOUTS and s == shape
                   and t == threads]
        blocked = blocked[0] if blocked else None
        cvs = [c.cv for c in (case, onednn, copy) if c is not None and c.cv is not None]
        rows.append({
            "op": op, "net": case.net, "shape": shape, "layout": layout, "threads": threads,
            "mib": case.tensor / 2**20,
            "dram": case.traffic > llc,
            "simdbn": case.gbps,
            "onednn": onednn.gbps if onednn else None,
            "copy": copy.gbps if copy else None,
            "blocked": blocked.gbps if blocked else None,
            "speedup": onednn.median / case.median if onednn else None,
            "vs_blocked": blocked.median / case.median if blocked else None,
            # GB/s ratios, not time ratios: an op may move more tensors than the copy does.
            "simdbn_copy": case.gbps / copy.gbps if copy else None,
            "onednn_copy": onednn.gbps / copy.gbps if copy and onednn else None,
            "cv": max(cvs) if cvs else None,
        })
    rows.sort(key=lambda r: (op_key(r["op"]), NET_ORDER.get(r["net"].split("+")[0], 9), r["net"],
                             shape_key(r["shape"]), r["layout"], r["threads"]))
    return rows


def fmt(value, spec=".2f", none="n/a"):
    return none if value is None else format(value, spec)


def pct(value):
    return fmt(None if value is None else 100 * value, ".0f")


def speedup_cell(value):
    text = fmt(value)
    return f"**{text}**" if value is not None and value < 1 else text


def copy_cell(value):
    text = pct(value)
    return f"*{text}*" if value is not None and value < 0.9 else text


def detail_table(rows, blocked_name):
    out = [f"| shape | MiB | layout | thr | copy GB/s | simdbn GB/s | oneDNN GB/s | speed-up "
           f"| simdbn % copy | oneDNN % copy | oneDNN {blocked_name} GB/s | vs {blocked_name} "
           f"| cv % |",
           "|---|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for r in rows:
        mib = fmt(r["mib"], ".1f" if r["mib"] >= 0.1 else ".3f") + (" †" if r["dram"] else "")
        out.append(
            f"| {r['shape']} | {mib} | {r['layout']} | {r['threads']} | {fmt(r['copy'], '.1f')} "
            f"| {fmt(r['simdbn'], '.1f')} | {fmt(r['onednn'], '.1f')} | {speedup_cell(r['speedup'])} "
            f"| {copy_cell(r['simdbn_copy'])} | {pct(r['onednn_copy'])} "
            f"| {fmt(r['blocked'], '.1f')} | {speedup_cell(r['vs_blocked'])} "
            f"| {fmt(None if r['cv'] is None else 100 * r['cv'], '.0f', '-')} |")
    return out


def summary_table(rows, blocked_name):
    out = [f"| op | layout | threads | cases | speed-up vs oneDNN | in LLC | beyond LLC "
           f"| vs oneDNN {blocked_name} | simdbn % copy | oneDNN % copy | simdbn slower "
           f"| simdbn < 90% copy |",
           "|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
    groups = collections.OrderedDict()
    for r in rows:
        groups.setdefault((r["op"], r["layout"], str(r["threads"])), []).append(r)
        groups.setdefault((r["op"], r["layout"], "all"), []).append(r)
    for (op, layout, threads) in sorted(groups,
                                        key=lambda k: (op_key(k[0]), k[1], k[2] == "all", k[2])):
        g = groups[(op, layout, threads)]
        slower = sum(1 for r in g if r["speedup"] is not None and r["speedup"] < 1)
        below = sum(1 for r in g if r["simdbn_copy"] is not None and r["simdbn_copy"] < 0.9)
        bold = "**" if threads == "all" else ""
        out.append(
            f"| {op} | {layout} | {bold}{threads}{bold} | {len(g)} "
            f"| {bold}{fmt(geomean(r['speedup'] for r in g))}{bold} "
            f"| {fmt(geomean(r['speedup'] for r in g if not r['dram']))} "
            f"| {fmt(geomean(r['speedup'] for r in g if r['dram']))} "
            f"| {fmt(geomean(r['vs_blocked'] for r in g))} "
            f"| {pct(geomean(r['simdbn_copy'] for r in g))} "
            f"| {pct(geomean(r['onednn_copy'] for r in g))} | {slower} | {below} |")
    return out


def trailing_section(rows, limit=15):
    out = []
    slower = sorted((r for r in rows if r["speedup"] is not None and r["speedup"] < 1),
                    key=lambda r: r["speedup"])
    below = sorted((r for r in rows if r["simdbn_copy"] is not None and r["simdbn_copy"] < 0.9),
                   key=lambda r: r["simdbn_copy"])
    for title, chosen, what in (("simdbn slower than oneDNN (same layout)", slower, "speedup"),
                                ("simdbn below 90% of the copy ceiling", below, "simdbn_copy")):
        out.append(f"**{title}: {len(chosen)} of {len(rows)} rows**"
                   + (f" (worst {limit} shown)" if len(chosen) > limit else "") + "\n")
        for r in chosen[:limit]:
            value = fmt(r[what]) + "x" if what == "speedup" else pct(r[what]) + "%"
            out.append(f"- {r['op']} {r['layout']} {r['shape']} threads:{r['threads']}: {value} "
                       f"(simdbn {fmt(r['simdbn'], '.1f')}, oneDNN {fmt(r['onednn'], '.1f')}, "
                       f"copy {fmt(r['copy'], '.1f')} GB/s{', beyond LLC' if r['dram'] else ''})")
        out.append("")
    return out


def implementations(cases):
    impls = collections.defaultdict(set)
    for (op, lib, layout, _, _), case in cases.items():
        if lib is not None:
            impls[(op, lib, layout)].add(case.impl)
    return [f"- {op} {lib} {layout}: {', '.join(sorted(v))}"
            for (op, lib, layout), v in sorted(impls.items())]


def markdown(cases, contexts, errors, rows, llc):
    ctx = contexts[0] if contexts else {}
    blocked = ctx.get("blocked_layout", "blocked")
    loads = ["/".join(f"{x:.1f}" for x in c.get("load_avg", [])) for c in contexts]
    out = ["# simdbn vs oneDNN: batch-normalization benchmark", ""]
    out.append(f"- Machine: {ctx.get('host_name', '?')}, {ctx.get('num_cpus', '?')} CPUs at "
               f"{ctx.get('mhz_per_cpu', '?')} MHz, LLC {llc / 2**20:.0f} MiB; "
               f"simdbn target {ctx.get('simdbn_target', '?')}, oneDNN "
               f"{ctx.get('onednn_version', '?')}; {ctx.get('date', '?')}")
    cvs = [c.cv for c in cases.values() if c.cv is not None]
    noise = (f"median cv {100 * statistics.median(cvs):.1f}%, {sum(v > 0.1 for v in cvs)} of "
             f"{len(cvs)} cases above 10%" if cvs else "one run per case, noise unknown")
    # A 1-thread case whose CPU time falls short of its wall time waited for a core: the share
    # measures how much other work competed with the benchmark.
    shares = [sum(c.cpu_seconds) / sum(c.seconds) for (_, _, _, _, t), c in cases.items()
              if t == 1 and sum(c.seconds) > 0]
    share = (f"1-thread cases had a core {100 * statistics.median(shares):.0f}% of their wall "
             f"time (median; 100% = no competition)" if shares else "")
    stat = "best" if Case.stat is min else "median"
    out.append(f"- {len(contexts)} input file(s); each figure is the {stat} of "
               f"{max((len(c.seconds) for c in cases.values()), default=0)} run(s); noise: "
               f"{noise}; {share}. Load average at the start of each file: "
               f"{', '.join(loads) or '?'}")
    out.append("- Traffic model: inference reads x and writes y (2 x tensor bytes); Copy copies x "
               "into y over the same threads (memcpy; non-temporal stores when x + y exceed half "
               "the LLC, as simdbn streams on several threads; on one, simdbn streams from 7/16 "
               f"of the LLC, where memcpy stayed faster). GB/s = traffic / {stat} time.")
    out.append("- speed-up = oneDNN time / simdbn time in the same layout (> 1: simdbn faster; "
               "**bold** < 1). % copy = library GB/s / copy GB/s (*italic* < 90%). vs "
               f"{blocked} = oneDNN in its native blocked layout {blocked} (bytes counted "
               "unpadded) / simdbn. † = x + y exceed the LLC: DRAM-bound. cv = largest "
               "coefficient of variation of the three times.")
    out.append("- oneDNN ran with omp_set_num_threads(threads); simdbn with simdbn_threading"
               "{threads}; both may use fewer threads for small tensors.")
    out.append("")
    out.append("## Geometric means")
    out.append("")
    out += summary_table(rows, blocked)
    out.append("")
    for op in sorted({r["op"] for r in rows}, key=op_key):
        nets = []
        for r in rows:
            if r["op"] == op and r["net"] not in nets:
                nets.append(r["net"])
        for net in nets:
            out.append(f"## {op}: {net}")
            out.append("")
            out += detail_table([r for r in rows if r["op"] == op and r["net"] == net], blocked)
            out.append("")
    out.append("## Where simdbn trails")
    out.append("")
    out += trailing_section(rows)
    out.append("## Implementations that ran")
    out.append("")
    out += implementations(cases)
    if errors:
        out.append("")
        out.append("## Errors")
        out.append("")
        out += [f"- {'/'.join(str(k) for k in key[:-1] if k is not None)}/threads:{key[-1]}: {msg}"
                for key, msg in sorted(errors.items(), key=str)]
    return "\n".join(out) + "\n"


def minor_label(value, _):
    """Labels the 2, 3 and 5 minor ticks of a log axis, which short ranges otherwise leave bare."""
    if value <= 0:
        return ""
    mantissa = round(value / 10 ** math.floor(math.log10(value)), 6)
    return f"{value:g}" if mantissa in (2, 3, 5) else ""


def chart(rows, llc, blocked, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ops = sorted({r["op"] for r in rows}, key=op_key)
    height = 5.4 * len(ops) + 1.0
    fig, grid = plt.subplots(len(ops), 3, figsize=(17, height), squeeze=False,
                             gridspec_kw={"width_ratios": [1, 1.5, 1.5]})
    styles = {("NCHW", 1): ("o", "tab:blue"), ("NCHW", 2): ("o", "tab:orange"),
              ("NHWC", 1): ("^", "tab:green"), ("NHWC", 2): ("^", "tab:red")}
    thread_counts = sorted({r["threads"] for r in rows})
    groups = [(lay, t) for lay in PLAIN_LAYOUTS for t in thread_counts]
    for op, axes in zip(ops, grid):
        op_rows = [r for r in rows if r["op"] == op]
        ax = axes[0]
        means = [geomean(r["speedup"] for r in op_rows if (r["layout"], r["threads"]) == g) or 0
                 for g in groups]
        colors = [styles.get(g, ("o", "tab:gray"))[1] for g in groups]
        bars = ax.bar([f"{lay}\n{t} thr" for lay, t in groups], means, color=colors)
        ax.bar_label(bars, fmt="%.2fx")
        ax.axhline(1, color="black", lw=1)
        ax.set_ylabel("geometric-mean speed-up vs oneDNN")
        ax.set_title(f"{op}: simdbn / oneDNN, same layout")
        for ax, key, title, ylabel in (
                (axes[1], "speedup", "speed-up vs oneDNN (same layout)",
                 "oneDNN time / simdbn time"),
                (axes[2], "simdbn_copy", "simdbn vs copy bandwidth", "fraction of copy GB/s")):
            for g in groups:
                pts = [(r["mib"], r[key]) for r in op_rows
                       if (r["layout"], r["threads"]) == g and r[key] is not None]
                if pts:
                    marker, color = styles.get(g, ("o", "tab:gray"))
                    ax.scatter(*zip(*pts), marker=marker, color=color, alpha=0.75, s=28,
                               label=f"{g[0]}, {g[1]} thread{'s' if g[1] > 1 else ''}")
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.axhline(1, color="black", lw=1)
            if key == "simdbn_copy":
                ax.axhline(0.9, color="gray", lw=1, ls=":")
                ax.text(ax.get_xlim()[0], 0.9, " 90%", va="top", color="gray")
            ax.axvline(llc / 2 / 2**20, color="gray", ls="--", lw=1)
            ax.text(llc / 2 / 2**20, ax.get_ylim()[1], " x+y > LLC →", va="top", color="gray")
            ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
            ax.yaxis.set_minor_formatter(matplotlib.ticker.FuncFormatter(minor_label))
            ax.set_xlabel("tensor size (MiB)")
            ax.set_ylabel(ylabel)
            ax.set_title(f"{op}: {title}")
            ax.grid(True, which="both", alpha=0.25)
    handles, labels = grid[0][1].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=9, frameon=False)
    fig.suptitle(f"simdbn vs oneDNN in the same layout ({blocked}, oneDNN's blocked layout, is "
                 "in the report only)", fontsize=11)
    fig.tight_layout(rect=(0, 0.5 / height, 1, 1 - 0.4 / height))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json", nargs="+", help="simdbn_bench --benchmark_out files")
    parser.add_argument("--md", help="write the markdown report here (default: stdout only)")
    parser.add_argument("--png", help="write the speed-up chart here")
    parser.add_argument("--stat", choices=("median", "min"), default="median",
                        help="how repetitions of a case combine (default: median)")
    args = parser.parse_args()
    Case.stat = min if args.stat == "min" else statistics.median
    cases, contexts, errors = load(args.json)
    llc = llc_bytes(contexts[0] if contexts else {})
    rows = build_rows(cases, llc)
    if not rows:
        sys.exit("bench_report.py: no simdbn cases in the input")
    text = markdown(cases, contexts, errors, rows, llc)
    if args.md:
        with open(args.md, "w") as f:
            f.write(text)
    if args.png:
        chart(rows, llc, contexts[0].get("blocked_layout", "blocked"), args.png)
    sys.stdout.write(text)


if __name__ == "__main__":
    main()
