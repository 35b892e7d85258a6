#!/usr/bin/env python3
"""The two series of the plots in docs/detection-quality.md, as JSONL for `deadair replay --plot`:
  stuck.jsonl  - latency_ms{host="a"}: log-normal around 120 ms, one sample a minute for three
                 days; on the third day it repeats one reading for 90 minutes (a frozen exporter).
  daily.jsonl  - requests{host="b"}: a daily cycle 50 + 20 sin(2 pi t / day) + N(0, 1); on the
                 third day, at a low point of the cycle, one sample 6 sd above the cycle (inside
                 the day's range).
Usage: research/plot_inputs.py OUTDIR
"""
import json, math, os, random, sys

T0 = 1767225600000  # 2026-01-01T00:00:00Z
DAY = 1440


def write(path, name, labels, values):
    with open(path, "w") as f:
        for i, v in enumerate(values):
            f.write(json.dumps({"name": name, "labels": labels, "timestamp": T0 + i * 60000, "value": v}) + "\n")


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    rng = random.Random(13)
    vals, frozen = [], None
    for i in range(3 * DAY):
        v = round(math.exp(math.log(120) + 0.4 * rng.gauss(0, 1)), 2)
        if 2 * DAY + 600 <= i < 2 * DAY + 690:
            frozen = vals[-1] if frozen is None else frozen
            v = frozen
        vals.append(v)
    write(os.path.join(out, "stuck.jsonl"), "latency_ms", {"host": "a"}, vals)
    rng = random.Random(14)
    level = lambda i: 50 + 20 * math.sin(2 * math.pi * i / DAY)
    spike = 2 * DAY + 1080  # three quarters of the day: the cycle's low point
    vals = [round(level(i) + (6.0 if i == spike else rng.gauss(0, 1)), 3) for i in range(3 * DAY)]
    write(os.path.join(out, "daily.jsonl"), "requests", {"host": "b"}, vals)


if __name__ == "__main__":
    main()
