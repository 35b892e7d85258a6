from loco import *
import itertools
SLc={}
for nb in [4,6,12,24]:
    tb=[(f["hour"]*nb)//24 for f in files]
    for dil in [1]:
        S=[season_d3(f["v"], tb[i], nb=nb, dil=dil, tdil=0) for i,f in enumerate(files)]
        for sh in [10,30]: SLc[(nb,sh)]=[lik_of(S[i],sh,0.002,150) for i in range(N)]
def config2(k,th,nb,sh):
    gg=[np.where(er[i][0]>k*R[i][1], g[i], 0.5*g[i]) for i in range(N)]
    SL=SLc[(nb,sh)]
    return [peak(np.maximum.reduce([gg[i],0.25*(z[i]+np.maximum(c512[i],SL[i])),0.5*(R[i][0]>=th)]),50) for i in range(N)]
grid=list(itertools.product([0.1,0.25,0.5],[2.5,3.0,3.5],[4,6,12,24],[10,30]))
out={cfg:config2(*cfg) for cfg in grid}
cats=sorted(set(f["cat"] for f in files))
full={cfg:sc.score(out[cfg]) for cfg in grid}
std=np.array([full[c]["standard"] for c in grid]); print("grid std: min %.2f median %.2f max %.2f"%(std.min(),np.median(std),std.max()))
best=max(grid,key=lambda c:full[c]["standard"]); print("best on all:",best,fmt(full[best]), "thr", best_thr(sc,out[best]))
prop=(0.25,3.5,6,30); print("proposed",prop,fmt(full[prop]),"thr",best_thr(sc,out[prop]))
print("| held out | picked (k, LS th, buckets, SL short) | re-optimised | training threshold | proposed config on this category |")
for cat in cats:
    tr=[i for i,f in enumerate(files) if f["cat"]!=cat]; te=[i for i,f in enumerate(files) if f["cat"]==cat]
    pick=max(grid,key=lambda c:sc.score(out[c],tr)["standard"])
    r1=sc.score(out[pick],te)
    r2={p:score_at(sc,out[pick],thr_subset(out[pick],tr,p),te)[p] for p in ns.PROFILES}
    r3=sc.score(out[prop],te)
    print(f"| {cat} | {pick} | {r1['standard']:.2f} / {r1['reward_low_FP_rate']:.2f} / {r1['reward_low_FN_rate']:.2f} | {r2['standard']:.2f} / {r2['reward_low_FP_rate']:.2f} / {r2['reward_low_FN_rate']:.2f} | {r3['standard']:.2f} |", flush=True)
for nb in [4,6,12,24]:
    print("nb",nb,"median std over other params: %.2f"%np.median([full[c]["standard"] for c in grid if c[2]==nb]))
