"""Session 7 feasibility check: is seasonal level novelty a calibrated detector under the budget?

Per file, one row at a time: the value's level (8 bands of the first day's range, 2 more each
side) in its part of the day (6 buckets of 4 h) is novel if never seen there (cells of level +-1
are marked, as the classic `context.season`). From two days after the first, a novel sample is
judged by a burst test: k novelties among the last W samples against a Poisson(r W) tail, r the
series' own novelty rate (learned from samples that were not improbable). A window counts as
caught if a sample in it falls below the default model's per-sample alert probability (0.01
alerts a day at the file's cadence, shared by 6 tests). Prints, per file, the alert level as
-log10 p, the highest surprise outside the windows and in each window, and the totals.

    python3 research/nab-research/season_novelty.py [W]     (default W = 30; needs numpy)

Result on the shared subset (W = 30): 0/64 windows; the highest in-window surprise is 3.7
(alert levels 4.2-5.2), most windows 0-2: not shipped (docs/nab-research.md, session 7).
"""
import sys, math, datetime, os
import numpy as np
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nab import load

W = int(sys.argv[1]) if len(sys.argv) > 1 else 30
NB, LV = 6, 8


def poisson_sf(k, mu):
    """P(N >= k) for N ~ Poisson(mu), summed from k (no cancellation for small tails)."""
    if k <= 0:
        return 1.0
    term = math.exp(-mu + k * math.log(mu) - math.lgamma(k + 1)) if mu > 0 else 0.0
    total, i = 0.0, k
    while term > total * 1e-17 and i < k + 200:
        total += term
        i += 1
        term *= mu / i
    return min(1.0, total)


def run(f):
    v = f['v']; ts = [datetime.datetime.fromisoformat(t) for t in f['ts']]
    step = (ts[1] - ts[0]).total_seconds()
    n = len(v); out = np.ones(n)
    lo = hi = v[0]; bits = np.zeros((NB, LV + 4), bool)
    learn = max(300, int(86400 / step))
    rate_n = rate_k = 0; hist = []
    for i, x in enumerate(v):
        if i < learn:
            lo = min(lo, x); hi = max(hi, x); continue
        w = (hi - lo) / LV
        q = min(max(int(math.floor((x - lo) / w)), -2), LV + 1) if w > 0 else 0
        b = ts[i].hour * NB // 24
        novel = not bits[b, q + 2]
        bits[b, max(-2, q - 1) + 2:min(LV + 1, q + 1) + 3] = True
        hist.append(novel); hist = hist[-W:]
        if i - learn > 2 * 86400 / step and novel:
            r = (rate_k + 1) / (rate_n + 2)
            out[i] = poisson_sf(sum(hist), r * W)
        if out[i] > 1e-4:
            rate_k += novel; rate_n += 1
    return out, step


def main():
    caught = nw = false = 0; days = 0.0
    for f in load():
        p, step = run(f)
        ts = [datetime.datetime.fromisoformat(t) for t in f['ts']]
        n = len(ts); prob = min(n * 15 // 100, 750)
        ap = 0.01 * step / 86400 / 6
        wins = [(datetime.datetime.fromisoformat(a[:19]), datetime.datetime.fromisoformat(b[:19])) for a, b in f['wins']]
        inw = np.array([any(a <= t <= b for a, b in wins) for t in ts])
        s = -np.log10(np.maximum(p, 1e-300))
        on = p <= ap; edges = on & ~np.r_[False, on[:-1]]
        fe = edges & ~inw; fe[:prob] = False
        false += int(fe.sum()); days += (ts[-1] - ts[prob]).total_seconds() / 86400
        cells = []
        for a, b in wins:
            m = np.array([a <= t <= b for t in ts]); nw += 1
            c = bool((edges & m).any()); caught += c
            cells.append(f"{'C' if c else '-'}{s[m].max():.1f}")
        out = s[prob:][~inw[prob:]]
        print(f"{f['name'][:32]:32s} level={-math.log10(ap):.1f} outside={out.max() if len(out) else 0:.1f} | {' '.join(cells)}")
    print(f"windows caught {caught}/{nw}, false alerts {false} ({false / days:.3f} per series-day)")


if __name__ == "__main__":
    main()
