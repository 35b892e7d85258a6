"""Harness: data loading, fast NAB scorer (same rules as tools/nab_score.py), CSV writer."""
import csv, json, os, sys, math, subprocess, importlib.util
import numpy as np

NAB = os.environ.get("NAB", os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../../shared/nab"))
spec = importlib.util.spec_from_file_location("nabscore", f"{NAB}/tools/nab_score.py")
ns = importlib.util.module_from_spec(spec); spec.loader.exec_module(ns)
PROFILES = ns.PROFILES

def load():
    labels = json.load(open(f"{NAB}/labels/combined_windows.json"))
    files = []
    for rel, wins in sorted(labels.items()):
        p = f"{NAB}/data/{rel}"
        if not os.path.exists(p): continue
        rows = list(csv.DictReader(open(p)))
        ts = [r["timestamp"] for r in rows]
        v = np.array([float(r["value"]) for r in rows])
        files.append(dict(rel=rel, cat=rel.split("/")[0], name=os.path.basename(rel), ts=ts, v=v, wins=wins))
    return files

class Scorer:
    def __init__(self, files):
        self.files = files
        self.per = []
        for f in files:
            stamps = [ns.norm_ts(t) for t in f["ts"]]
            pts, nw = ns.file_points(stamps, [0.0]*len(stamps), f["wins"])
            n = len(stamps); prob = n - len(pts)
            kind = np.array([p[1] == "w" for p in pts])
            wmap = {}
            gid = np.array([wmap.setdefault(p[2], len(wmap)) if p[1] == "w" else -1 for p in pts])
            unit = np.array([p[3] for p in pts])
            self.per.append(dict(prob=prob, kind=kind, gid=gid, unit=unit, nw=nw))
    def score(self, scores, subset=None, detail=False):
        """scores: list of arrays aligned with files. subset: list of file indices."""
        idx = range(len(self.files)) if subset is None else subset
        S, K, G, U = [], [], [], []
        off = 0; nwin = 0
        for i in idx:
            p = self.per[i]
            S.append(np.asarray(scores[i], float)[p["prob"]:]); K.append(p["kind"]); U.append(p["unit"])
            g = p["gid"].copy(); g[g >= 0] += off; off += p["nw"]; nwin += p["nw"]; G.append(g)
        s = np.concatenate(S); k = np.concatenate(K); g = np.concatenate(G); u = np.concatenate(U)
        order = np.argsort(-s, kind="stable")
        s, k, g, u = s[order], k[order], g[order], u[order]
        n = len(s)
        last = np.ones(n, bool); last[:-1] = s[:-1] != s[1:]
        wpos = np.nonzero(k)[0]
        o2 = np.lexsort((wpos, g[wpos])); wp = wpos[o2]; wg = g[wp]
        out = {}
        for name, (tp, fp, fn) in PROFILES.items():
            inc = np.where(k, 0.0, fp * u)
            val = tp * u[wp] + 10.0 * wg
            cm = np.maximum.accumulate(val) - 10.0 * wg
            prev = np.empty_like(cm); prev[0] = -fn; prev[1:] = cm[:-1]
            first = np.ones(len(wg), bool); first[1:] = wg[1:] != wg[:-1]
            prev[first] = -fn
            inc[wp] += cm - prev
            tot = np.cumsum(inc)[last]
            base = -fn * nwin
            best = max(0.0, tot.max()) + base
            out[name] = 100.0 * (best - base) / (tp * nwin - base)
        return out

def write(files, scores, d):
    os.makedirs(d, exist_ok=True)
    for f, s in zip(files, scores):
        with open(os.path.join(d, f["name"]), "w") as fh:
            fh.write("timestamp,anomaly_score\n")
            for t, x in zip(f["ts"], s):
                fh.write(f"{t},{min(1.0, max(0.0, float(x))):.6f}\n")

def official(d):
    return subprocess.run([sys.executable, f"{NAB}/tools/nab_score.py", d], capture_output=True, text=True).stdout.strip()

def fmt(r):
    return f"std {r['standard']:.2f} lowFP {r['reward_low_FP_rate']:.2f} lowFN {r['reward_low_FN_rate']:.2f}"

def best_thr(sc, scores, profile="standard"):
    tp, fp, fn = PROFILES[profile]
    allpts = []
    for i, f in enumerate(sc.files):
        stamps = [ns.norm_ts(t) for t in f["ts"]]
        pts, nw = ns.file_points(stamps, list(scores[i]), f["wins"])
        allpts.append((f["rel"], pts))
    nwin = sum(p["nw"] for p in sc.per)
    return ns.best_score(allpts, nwin, tp, fp, fn)[1]

def diag(sc, scores, thr=None):
    if thr is None: thr = best_thr(sc, scores)
    print("threshold", thr)
    for i, f in enumerate(sc.files):
        p = sc.per[i]; s = np.asarray(scores[i])[p["prob"]:]
        hit = s >= thr
        det = set(p["gid"][hit & p["kind"]]); nfp = int((hit & ~p["kind"]).sum())
        print(f"{f['rel'][:45]:45s} n={len(f['v']):5d} win={p['nw']} det={len(det)} fp={nfp}")

def score_at(sc, scores, thr, subset=None):
    """NAB normalised scores at a fixed threshold (no sweep)."""
    idx = range(len(sc.files)) if subset is None else subset
    out = {}
    for name, (tp, fp, fn) in PROFILES.items():
        tot = 0.0; nwin = 0
        for i in idx:
            p = sc.per[i]; s = np.asarray(scores[i])[p["prob"]:]; hit = s >= thr
            nwin += p["nw"]
            tot += fp * p["unit"][hit & ~p["kind"]].sum()
            for g in range(p["nw"]):
                m = hit & p["kind"] & (p["gid"] == g)
                tot += tp * p["unit"][m].max() if m.any() else -fn
        base = -fn * nwin
        out[name] = 100.0 * (tot - base) / (tp * nwin - base)
    return out
