import math
import numpy as np
SQ2 = math.sqrt(2.0)
LOGF = math.log(1e-10)

def wa(alpha, n):
    return max(alpha, 1.0 / (n + 1))

class Lik:
    """deadair likelihood.rs"""
    def __init__(s, short=10, long_alpha=0.002, warmup=150):
        s.a = 2.0 / (short + 1.0); s.la = long_alpha; s.wu = warmup
        s.sh = 0.0; s.m = 0.0; s.v = 0.0
    def __call__(s, n, raw):
        sh = s.sh + s.a * (raw - s.sh)
        al = wa(s.la, n)
        d = sh - s.m; sd = math.sqrt(s.v)
        sc = 0.0
        if n >= s.wu and sd > 0 and d > 0:
            tail = 0.5 * math.erfc(d / sd / SQ2)
            sc = min(1.0, max(0.0, math.log(tail + 1e-10) / LOGF))
        s.sh = sh; s.m += al * d; s.v = (1 - al) * (s.v + al * d * d)
        return sc

def default_model(v, alpha=0.01, ewarm=100, tol=0.05, nwarm=100, short=10, la=0.002, lwarm=150, novelty=True):
    out = np.zeros(len(v))
    mean = 0.0; var = 0.0; lo = hi = 0.0
    L = Lik(short, la, lwarm)
    for n, x in enumerate(v):
        stat = None
        if n == 0:
            mean = x; var = 0.0
        else:
            d = x - mean
            sd = max(math.sqrt(var), max(1e-3 * abs(mean), 1e-9))
            if n >= ewarm:
                stat = math.erf(abs(d / sd) / SQ2)
            a = wa(alpha, n); mean += a * d; var = (1 - a) * (var + a * d * d)
        raw = stat if stat is not None else 0.0
        lk = L(n, raw)
        best = lk if stat is not None else 0.0
        if novelty:
            if n == 0: lo = hi = x
            else:
                m = tol * (hi - lo); nv = 1.0 if (x > hi + m or x < lo - m) else 0.0
                lo = min(lo, x); hi = max(hi, x)
                if n >= nwarm: best = max(best, nv)
        out[n] = best
    return out

def suppress(s, theta=0.5, R=100):
    """emit a score, then hold output at 0 for R samples after any sample >= theta."""
    out = np.array(s, float); last = -10**9
    for t in range(len(out)):
        x = out[t]
        if t - last < R: out[t] = 0.0
        elif x >= theta: last = t
    return out

def ctx_raw(v, B=8, K=3, M=4096, warm=0, freeze=None, mode="mean"):
    """Quantised context novelty. Levels from running [lo,hi] (or frozen after `freeze` samples).
    For order k=1..K the context (q_{t-k},...,q_t) is hashed into a bitset of M bits; raw = share of
    orders whose context is unseen (mode mean) or 1 if the top order is unseen (mode top)."""
    out = np.zeros(len(v)); table = bytearray(M)
    lo = hi = 0.0; hist = []
    for t, x in enumerate(v):
        if t == 0: lo = hi = x
        if freeze is None or t < freeze:
            lo = min(lo, x); hi = max(hi, x)
        w = (hi - lo) / B
        q = int(math.floor((x - lo) / w)) if w > 0 else 0
        if freeze is None: q = min(max(q, 0), B - 1)
        else: q = min(max(q, -2), B + 1)
        hist.append(q)
        if len(hist) > K + 1: hist.pop(0)
        nov = []
        h = 1469598103
        h = (h ^ (q + 7)) * 16777619 & 0xffffffff
        for k in range(1, min(K, len(hist) - 1) + 1):
            h = (h ^ (hist[-1 - k] + 7 + 16 * k)) * 16777619 & 0xffffffff
            key = (h >> 7) % M
            nov.append(table[key] == 0); table[key] = 1
        if t >= warm and nov:
            out[t] = (sum(nov) / len(nov)) if mode == "mean" else float(nov[-1])
    return out

def lik_of(raw, short=10, la=0.002, warm=150):
    L = Lik(short, la, warm); return np.array([L(n, r) for n, r in enumerate(raw)])

def ewma_z(v, alpha=0.01, warm=100, rel=1e-3):
    """signed z of x against EWMA mean/var (deadair ewma.rs), NaN during warmup"""
    out = np.full(len(v), np.nan); mean = var = 0.0
    for n, x in enumerate(v):
        if n == 0: mean = x; continue
        d = x - mean; sd = max(math.sqrt(var), max(rel * abs(mean), 1e-9))
        if n >= warm: out[n] = d / sd
        a = wa(alpha, n); mean += a * d; var = (1 - a) * (var + a * d * d)
    return out

def novelty(v, tol=0.05, warm=100):
    out = np.zeros(len(v)); lo = hi = v[0]
    for n, x in enumerate(v):
        if n == 0: continue
        m = tol * (hi - lo); nv = 1.0 if (x > hi + m or x < lo - m) else 0.0
        lo = min(lo, x); hi = max(hi, x)
        if n >= warm: out[n] = nv
    return out

def novelty_graded(v, warm=100, scale=0.1):
    """exceedance beyond seen range, as fraction of range: 0 inside; outside 0.5+0.5*min(1,e/(scale*range))"""
    out = np.zeros(len(v)); lo = hi = v[0]
    for n, x in enumerate(v):
        if n == 0: continue
        r = hi - lo
        e = max(x - hi, lo - x)
        if n >= warm and e > 0:
            out[n] = 0.5 + 0.5 * min(1.0, e / (scale * r)) if r > 0 else 1.0
        lo = min(lo, x); hi = max(hi, x)
    return out

def decay_novelty(v, lam=0.001, warm=100, alpha=0.01):
    """exceedance beyond a decaying envelope: hi relaxes toward the EWMA mean at rate lam per sample.
    score = e / (hi - lo) of envelope (0 inside)."""
    out = np.zeros(len(v)); lo = hi = m = v[0]
    for n, x in enumerate(v):
        if n == 0: continue
        r = hi - lo
        e = max(x - hi, lo - x)
        if n >= warm and e > 0:
            out[n] = min(1.0, e / r) if r > 0 else 1.0
        a = wa(alpha, n); m += a * (x - m)
        hi = max(x, hi - lam * (hi - m)); lo = min(x, lo + lam * (m - lo))
    return out

def peak(s, H=100, decay="exp"):
    """emit s only when it exceeds the (decaying) max of recent scores; else 0. One float of state."""
    out = np.zeros(len(s)); M = 0.0; d = 0.5 ** (1.0 / H)
    for t, x in enumerate(s):
        if x > M: out[t] = x
        M = max(x, M * d)
    return out

def likz_of(raw, short=10, la=0.002, warm=150):
    """likelihood without saturation: returns u=(short_avg - mean)/sd >= 0 (0 in warmup)"""
    a = 2.0 / (short + 1.0); sh = m = var = 0.0; out = np.zeros(len(raw))
    for n, r in enumerate(raw):
        sh += a * (r - sh); al = wa(la, n); d = sh - m; sd = math.sqrt(var)
        if n >= warm and sd > 0 and d > 0: out[n] = d / sd
        m += al * d; var = (1 - al) * (var + al * d * d)
    return out
