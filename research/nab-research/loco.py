"""Leave-one-category-out for the proposed method. Grid of configs; pick best standard on 3 categories
(threshold optimised on them), report held-out with re-optimised threshold and with the training threshold."""
from lib import *
import nab, itertools
ns=nab.ns
N=len(files); er=ER(); g=G(); z=ZL()
c512=[lik_of(ctx_frozen(f["v"],M=512),10,0.002,150) for f in files]
R=[robz3(f["v"]) for f in files]
SLd={None:None}
for dil in [1,2]:
    S=[season_d(f["v"], f["hour"], dil=dil) for f in files]
    SLd[dil]=[lik_of(S[i],30,0.002,150) for i in range(N)]
def config(k,th,dil):
    gg=[np.where(er[i][0]>k*R[i][1], g[i], 0.5*g[i]) if k is not None else g[i] for i in range(N)]
    LS=[0.5*(R[i][0]>=th) if th is not None else np.zeros(len(g[i])) for i in range(N)]
    C=[np.maximum(c512[i],SLd[dil][i]) if dil else c512[i] for i in range(N)]
    return [peak(np.maximum.reduce([gg[i],0.25*(z[i]+C[i]),LS[i]]),50) for i in range(N)]
def thr_subset(scores, subset, prof="standard"):
    tp,fp,fn=ns.PROFILES[prof]; allpts=[]; nw=0
    for i in subset:
        f=files[i]; stamps=[ns.norm_ts(t) for t in f["ts"]]
        pts,w=ns.file_points(stamps, list(scores[i]), f["wins"]); allpts.append((f["rel"],pts)); nw+=w
    return ns.best_score(allpts,nw,tp,fp,fn)[1]
if __name__=="__main__":
    grid=list(itertools.product([None,0.1,0.25,0.5],[None,2.5,3.0,3.5],[None,1,2]))
    out={cfg:config(*cfg) for cfg in grid}
    cats=sorted(set(f["cat"] for f in files))
    full={cfg:sc.score(out[cfg])["standard"] for cfg in grid}
    best=max(grid,key=lambda c:full[c]); print("best on all:",best,fmt(sc.score(out[best])), "thr", best_thr(sc,out[best]))
    print("| held out | picked (k, LS th, dil) | re-optimised | training threshold |")
    for cat in cats:
        tr=[i for i,f in enumerate(files) if f["cat"]!=cat]; te=[i for i,f in enumerate(files) if f["cat"]==cat]
        pick=max(grid,key=lambda c:sc.score(out[c],tr)["standard"])
        r1=sc.score(out[pick],te)
        r2={p:score_at(sc,out[pick],thr_subset(out[pick],tr,p),te)[p] for p in ns.PROFILES}
        print(f"| {cat} | {pick} | {r1['standard']:.2f} / {r1['reward_low_FP_rate']:.2f} / {r1['reward_low_FN_rate']:.2f} | {r2['standard']:.2f} / {r2['reward_low_FP_rate']:.2f} / {r2['reward_low_FN_rate']:.2f} |", flush=True)
    # fixed proposed config per category
    prop=(0.25,3.0,1)
    print("proposed",prop,fmt(sc.score(out[prop])))
    for cat in cats:
        te=[i for i,f in enumerate(files) if f["cat"]==cat]
        print(cat, "proposed", fmt(sc.score(out[prop],te)), " old-best-equiv", fmt(sc.score(out[(None,None,None)],te)))
    pass
    for cfg in grid: print(cfg, round(full[cfg],2))
