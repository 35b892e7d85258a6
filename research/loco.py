#!/usr/bin/env python3
"""Leave-one-category-out choice of model parameters on the NAB subset, at the frozen alert
threshold (the rule's false-alarm budget).

For every configuration of a grid (a model file with `{key}` placeholders), replays the 36 NAB
files once with `deadair replay` (each file is its own series, so each starts from fresh state)
and measures, per category:
  - the alert stream (../shared/nab/tools/nab_alerts.py): windows caught, false alerts per
    series-day;
  - the NAB standard score of the alert stream: each firing event scores 1, every other row 0,
    so NAB's threshold search has nothing to choose (the threshold is the budget).
Each fold picks the configuration with the best mean score on three categories and reports it
on the fourth. A configuration that helps one category and hurts the others does not win.

Usage: research/loco.py TEMPLATE.toml key=v1,v2 [key=v1,v2 ...] [--deadair BIN] [--nab DIR]
"""
import argparse, csv, itertools, json, os, subprocess, sys, tempfile, datetime, shutil

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def ts(s):
    return datetime.datetime.fromisoformat(s.replace("T", " ").replace("Z", "").split(".")[0].split("+")[0])


def run(deadair, model, nab, out):
    files = sorted(os.path.join(dp, f) for dp, _, fs in os.walk(os.path.join(nab, "data")) for f in fs if f.endswith(".csv"))
    alerts = os.path.join(out, "alerts.jsonl")
    subprocess.run([deadair, "replay", "-q", "--model", model, "--alerts", alerts] + files,
                   check=True, stderr=subprocess.DEVNULL)
    fired = {}
    for ln in open(alerts):
        e = json.loads(ln)
        if e["state"] == "firing" and e["kind"] in ("anomaly", "stuck"):
            fired.setdefault(e["name"], set()).add(ts(e["event_time"]))
    # binary score files: 1 at a firing event's row
    for f in files:
        cat = os.path.basename(os.path.dirname(f))
        stem = os.path.basename(f)[:-4]
        os.makedirs(os.path.join(out, cat), exist_ok=True)
        with open(f) as src, open(os.path.join(out, cat, os.path.basename(f)), "w") as dst:
            w = csv.writer(dst)
            w.writerow(["timestamp", "anomaly_score"])
            for r in csv.DictReader(src):
                w.writerow([r["timestamp"], 1 if ts(r["timestamp"]) in fired.get(stem, ()) else 0])
    return alerts


def measure(out, alerts, nab, cat):
    tool = os.path.join(nab, "tools")
    s = subprocess.run([sys.executable, os.path.join(tool, "nab_score.py"), os.path.join(out, cat)],
                       capture_output=True, text=True, check=True).stdout
    std = float(s.split("standard=")[1].split()[0])
    # the alert stream of this category only
    sub = os.path.join(out, "labels-" + cat)
    if not os.path.exists(sub):
        os.makedirs(os.path.join(sub, "labels"))
        labels = json.load(open(os.path.join(nab, "labels", "combined_windows.json")))
        json.dump({k: v for k, v in labels.items() if k.startswith(cat + "/")},
                  open(os.path.join(sub, "labels", "combined_windows.json"), "w"))
        os.symlink(os.path.abspath(os.path.join(nab, "data")), os.path.join(sub, "data"))
    a = subprocess.run([sys.executable, os.path.join(tool, "nab_alerts.py"), "--alerts", alerts, "--nab", sub],
                       capture_output=True, text=True, check=True).stdout
    caught = a.split("windows caught=")[1].split()[0]
    per_day = float(a.split("false_per_series_day=")[1].split()[0])
    return std, caught, per_day


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("template")
    ap.add_argument("grid", nargs="+")
    ap.add_argument("--deadair", default=os.path.join(ROOT, "target", "release", "deadair"))
    ap.add_argument("--nab", default=os.path.join(ROOT, "..", "shared", "nab"))
    a = ap.parse_args()
    template = open(a.template).read()
    keys = [g.split("=")[0] for g in a.grid]
    values = [g.split("=")[1].split(",") for g in a.grid]
    cats = sorted(d for d in os.listdir(os.path.join(a.nab, "data")))
    results = {}
    work = tempfile.mkdtemp(prefix="deadair-loco-")
    for combo in itertools.product(*values):
        name = ",".join(f"{k}={v}" for k, v in zip(keys, combo))
        out = os.path.join(work, name)
        os.makedirs(out)
        model = os.path.join(out, "model.toml")
        open(model, "w").write(template.format(**dict(zip(keys, combo))))
        alerts = run(a.deadair, model, a.nab, out)
        results[name] = {c: measure(out, alerts, a.nab, c) for c in cats}
        row = "  ".join(f"{c[:14]} {v[0]:6.2f} {v[1]:>5} {v[2]:.3f}" for c, v in results[name].items())
        print(f"{name:40s} {row}", flush=True)
    print("\nfolds (held-out category: configuration chosen on the other three -> its score there)")
    for held in cats:
        train = [c for c in cats if c != held]
        best = max(results, key=lambda n: sum(results[n][c][0] for c in train) / len(train))
        std, caught, per_day = results[best][held]
        tmean = sum(results[best][c][0] for c in train) / len(train)
        print(f"{held:22s} chose {best:40s} train mean {tmean:6.2f}  held-out standard {std:6.2f}, windows {caught}, false/series-day {per_day:.3f}")
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
