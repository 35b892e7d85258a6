"""The research log's best combination (70.11 standard), parameterised. Usage: python3 best.py [bits]"""
import sys, math
import numpy as np
from nab import load, Scorer, fmt
from det import novelty_graded, ewma_z, lik_of, peak

def ctx_frozen(v, B=8, K=3, M=1024, freeze=300):
    out = np.zeros(len(v)); table = bytearray(M); lo = hi = 0.0; hist = []
    for t, x in enumerate(v):
        if t == 0: lo = hi = x
        if t < freeze: lo = min(lo, x); hi = max(hi, x)
        w = (hi - lo) / B
        q = min(max(int(math.floor((x - lo) / w)), -2), B + 1) if w > 0 else 0
        h = (1469598103 ^ (q + 7)) * 16777619 & 0xffffffff
        nov = 0; used = 0
        for k in range(1, min(K, len(hist)) + 1):
            h = (h ^ (hist[-k] + 7 + 16 * k)) * 16777619 & 0xffffffff
            key = (h >> 7) % M
            nov += table[key] == 0; table[key] = 1; used += 1
        out[t] = nov / used if used else 0.0
        hist.append(q); hist[:] = hist[-K:]
    return out

def combo(v, M=1024, H=50):
    G = novelty_graded(v, 100, 0.1)
    z = np.nan_to_num(np.abs(ewma_z(v, 0.05, 100, 1e-3)))
    ZL = lik_of(z, 3, 0.01, 150)
    CL = lik_of(ctx_frozen(v, M=M), 10, 0.002, 150)
    s = np.maximum(G, 0.25 * (ZL + CL))
    return peak(s, H)

if __name__ == "__main__":
    M = int(sys.argv[1]) if len(sys.argv) > 1 else 1024
    files = load(); sc = Scorer(files)
    print(M, fmt(sc.score([combo(f["v"], M) for f in files])))
