from final import *
from nab import load, Scorer, fmt, best_thr
files = load(); sc = Scorer(files)
def runD(mk):
    out=[]
    for f in files:
        D=mk(); out.append(np.array([D.update(x,int(t[11:13])) for x,t in zip(f["v"],f["ts"])]))
    return out
def noS():
    D=Detector(); D.SL=lambda n,r:0.0; return D
cases=[("final (0.25,3.5,6,30)",lambda:Detector()),
 ("no G margin (k=0)",lambda:Detector(k=0.0)),
 ("no LS tier",lambda:Detector(ls_th=99)),
 ("no seasonal",noS),
 ("seasonal without time (1 bucket)",lambda:Detector(nb=1)),
 ("24 hourly buckets",lambda:Detector(nb=24)),
 ("4 buckets",lambda:Detector(nb=4)),
 ("ctx 1024 bits",lambda:Detector(ctx_bits=1024)),
 ("ctx 256 bits",lambda:Detector(ctx_bits=256)),
 ("LS th 3.0",lambda:Detector(ls_th=3.0)),
 ("peak H 30",lambda:Detector(H=30)),("peak H 100",lambda:Detector(H=100)),
 ("k 0.5",lambda:Detector(k=0.5)),("k 1.0",lambda:Detector(k=1.0)),
 ("SL short 10",lambda:Detector(sl_short=10)),
]
for name,mk in cases:
    S=runD(mk); print(f"{name:36s} {fmt(sc.score(S))} thr {best_thr(sc,S):.3f}", flush=True)
