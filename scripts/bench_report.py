#!/usr/bin/env python3
"""One markdown report from the outputs of scripts/bench-all.sh.

    scripts/bench_report.py DIR COMMIT STARTED CORES

Reads criterion's estimates of this run (target/criterion/*/*/new/) and the text the scripts
printed (DIR/*.txt); every figure printed is one of theirs: medians for criterion, the scripts'
own lines otherwise. A missing result is reported as missing, never filled in.
"""
import json
import re
import sys
from pathlib import Path

CRITERION = Path("target/criterion")


def median_ns(group, bench):
    """criterion's median time per iteration (ns) and elements per iteration, or None."""
    d = CRITERION / group / bench / "new"
    try:
        est = json.loads((d / "estimates.json").read_text())
        meta = json.loads((d / "benchmark.json").read_text())
    except (OSError, ValueError):
        return None
    elements = (meta.get("throughput") or {}).get("Elements")
    return est["median"]["point_estimate"], elements


def rate(group, bench):
    """Elements per second at criterion's median, in millions, as text."""
    m = median_ns(group, bench)
    if m is None or not m[1]:
        return "missing"
    ns, n = m
    return f"{n / ns * 1e3:.2f} M"


def ms(group, bench):
    m = median_ns(group, bench)
    return "missing" if m is None else f"{m[0] / 1e6:.1f} ms"


def lines(path, pattern):
    try:
        text = Path(path).read_text()
    except OSError:
        return []
    return [l.strip() for l in text.splitlines() if re.search(pattern, l)]


def code(block):
    return "```text\n" + ("\n".join(block) if block else "(missing: see the bench's log)") + "\n```"


def main():
    out_dir, commit, started, cores = sys.argv[1:5]
    d = Path(out_dir)
    p = print
    p(f"## One run at {commit}")
    p()
    p(f"Every figure of this section comes from one run of `scripts/bench-all.sh` at {commit}, "
      f"started {started}, on this project's {cores}-core build machine, one bench after another.")
    p()

    p("### Engine (`cargo bench --bench engine`)")
    p()
    p("Samples per second on one core, criterion medians; `floor` is the hash lookup and 64-byte "
      "state update any per-series design needs.")
    p()
    p("| series | engine (replay path) | floor | engine / floor |")
    p("|---|---|---|---|")
    for n in (10_000, 100_000, 1_000_000):
        e, f = median_ns("replay_path", f"{n}_series"), median_ns("floor", f"{n}_series")
        ratio = f"{(f[0] / f[1]) / (e[0] / e[1]):.2f}" if e and f else "missing"
        p(f"| {n:,} |".replace(",", " ") + f" {rate('replay_path', f'{n}_series')} | {rate('floor', f'{n}_series')} | {ratio} |")
    p()
    p(code(lines(d / "engine.txt", r"^series=")))
    p()

    p("### Decoders (`cargo bench --bench decode`)")
    p()
    p("| group | format | samples/s (median) |")
    p("|---|---|---|")
    for group in ("decode_100_samples", "one_sample_messages"):
        g = CRITERION / group
        for bench in sorted(x.name for x in g.iterdir()) if g.is_dir() else []:
            if (g / bench / "new").is_dir():
                p(f"| {group} | {bench} | {rate(group, bench)} |")
    p()

    p("### State (`cargo bench --bench state`)")
    p()
    p(code(lines(d / "state.txt", r"^[0-9]+ .*B/series")))
    p()
    p("| series | snapshot (median) | restore from bytes (median) |")
    p("|---|---|---|")
    for group, label in (("state_1M_series", "1M, 8 labels each"),
                         ("state_100k_mature_series", "100 000 mature")):
        p(f"| {label} | {ms(group, 'snapshot')} | {ms(group, 'restore')} |")
    p()

    p("### End to end through tansu (`scripts/bench-e2e.sh`)")
    p()
    p(code(lines(d / "e2e.txt", r"samples/s")))
    p()

    p("### Restoring a 1M-series partition from the state topic (`scripts/bench-restore.sh 1000000`)")
    p()
    p(code(lines(d / "restore.txt", r".")))
    p()

    p("### Side by side with Prometheus (`scripts/bench-prometheus.sh`)")
    p()
    try:
        p(Path(d / "prometheus.txt").read_text().rstrip())
    except OSError:
        p("(missing: see the script's log)")


if __name__ == "__main__":
    main()
