import sys, math, datetime
sys.path.insert(0, __import__('os').path.dirname(__import__('os').path.abspath(__file__)))
import numpy as np
from nab import load, Scorer, fmt, diag, best_thr, score_at
from det import novelty_graded, ewma_z, lik_of, peak, Lik
from best import ctx_frozen, combo
files = load(); sc = Scorer(files)
for f in files:
    f["hour"] = np.array([int(t[11:13]) for t in f["ts"]])
    f["minute"] = np.array([int(t[11:13])*60+int(t[14:16]) for t in f["ts"]])
    f["wd"] = np.array([datetime.date(int(t[:4]),int(t[5:7]),int(t[8:10])).weekday() for t in f["ts"]])
FNV0=1469598103; P=16777619
def fnv(h,x): return ((h ^ x) * P) & 0xffffffff

def ctx2(v, tb=None, B=8, K=3, M=1024, freeze=300, season_w=1, Ms=None, counters=0, seq=True, inc_at=None):
    """sequence contexts (orders 1..K) + optional seasonal key (q, tb[t]) novelty.
    Ms: separate bitset size for seasonal keys (None = shared table of M).
    counters: 0 -> bits; c>0 -> saturating counts up to 2^c-1, rarity 1/(1+cnt)."""
    n=len(v); out=np.zeros(n); table=np.zeros(M,np.int32); st = table if Ms is None else np.zeros(Ms,np.int32)
    Mss = M if Ms is None else Ms
    cap = (1<<counters)-1 if counters else 1
    lo=hi=0.0; hist=[]
    for t in range(n):
        x=v[t]
        if t==0: lo=hi=x
        if t<freeze: lo=min(lo,x); hi=max(hi,x)
        w=(hi-lo)/B
        q=min(max(int(math.floor((x-lo)/w)),-2),B+1) if w>0 else 0
        h=fnv(FNV0,q+7); nov=0.0; used=0.0
        if seq:
            for k in range(1,min(K,len(hist))+1):
                h=fnv(h,hist[-k]+7+16*k); key=(h>>7)%M
                c=table[key]
                nov += (c==0) if not counters else 1.0/(1+c)
                table[key]=min(cap,c+1); used+=1
        if tb is not None and season_w>0:
            hs=fnv(fnv(FNV0^0x5bd1e995, q+7), int(tb[t])+1000); key=(hs>>7)%Mss
            c=st[key]
            nov += season_w*((c==0) if not counters else 1.0/(1+c)); st[key]=min(cap,c+1); used+=season_w
        out[t]=nov/used if used else 0.0
        hist.append(q); hist[:]=hist[-K:]
    return out

_cache={}
def comp(name, fn):
    if name not in _cache: _cache[name]=[fn(f) for f in files]
    return _cache[name]
def G(): return comp('G', lambda f: novelty_graded(f["v"],100,0.1))
def ZL(): return comp('ZL', lambda f: lik_of(np.nan_to_num(np.abs(ewma_z(f["v"],0.05,100,1e-3))),3,0.01,150))
def CL(): return comp('CL', lambda f: lik_of(ctx_frozen(f["v"],M=1024),10,0.002,150))
def ev(S, label=""):
    r=sc.score(S); print(f"{label:50s} {fmt(r)}", flush=True); return r
def elapsed_days(f):
    import datetime as dt
    t0=None; out=np.zeros(len(f["ts"]))
    for i,t in enumerate(f["ts"]):
        d=dt.datetime(int(t[:4]),int(t[5:7]),int(t[8:10]),int(t[11:13]),int(t[14:16]))
        if t0 is None: t0=d
        out[i]=(d-t0).total_seconds()/86400
    return out
for f in files: f["el"]=elapsed_days(f)

def season(v, tb, B=8, M=512, freeze=300, dil=1, counters=0, thr=1):
    """seasonal novelty: is level q unseen in bucket tb? insert marks q-dil..q+dil. returns raw in {0,1} (or rarity)."""
    n=len(v); out=np.zeros(n); st=np.zeros(M,np.int32); lo=hi=0.0
    cap=(1<<counters)-1 if counters else 1
    for t in range(n):
        x=v[t]
        if t==0: lo=hi=x
        if t<freeze: lo=min(lo,x); hi=max(hi,x)
        w=(hi-lo)/B
        q=min(max(int(math.floor((x-lo)/w)),-2),B+1) if w>0 else 0
        b=int(tb[t])+1000
        key=(fnv(fnv(FNV0,q+7),b)>>7)%M
        c=st[key]
        out[t]= 1.0 if c<thr else 0.0
        for dq in range(-dil,dil+1):
            k2=(fnv(fnv(FNV0,q+dq+7),b)>>7)%M
            st[k2]=min(cap,st[k2]+1)
    return out
def rest(s, R=100, theta=0.75):
    """CAD-OSE style: emit s[t] only if no raw s >= theta in previous R samples (counter state)."""
    out=np.zeros(len(s)); last=-10**9
    for t,x in enumerate(s):
        if t-last>R: out[t]=x
        if x>=theta: last=t
    return out
def breakdown(S, thr=None):
    if thr is None: thr=best_thr(sc,S)
    tp,fpw,fn=1.0,0.11,1.0
    rows=[]
    for i,f in enumerate(files):
        p=sc.per[i]; s=np.asarray(S[i])[p["prob"]:]; hit=s>=thr
        fpv=(fpw*p["unit"][hit&~p["kind"]]).sum()
        tpv=0; miss=0
        for g in range(p["nw"]):
            m=hit&p["kind"]&(p["gid"]==g)
            if m.any(): tpv+=p["unit"][m].max()
            else: miss+=1
        rows.append((f["name"][:28],p["nw"],round(tpv,2),miss,round(fpv,2),int((hit&~p["kind"]).sum())))
    return thr,rows
def ger(v, warm=100):
    """exceedance e (>0 outside) and prior range r, zeros during warmup"""
    n=len(v); E=np.zeros(n); R=np.zeros(n); lo=hi=v[0]
    for t in range(1,n):
        x=v[t]; r=hi-lo; e=max(x-hi,lo-x)
        if t>=warm and e>0: E[t]=e; R[t]=r
        lo=min(lo,x); hi=max(hi,x)
    return E,R
def ER(): return comp('ER', lambda f: ger(f["v"]))
def gmap(E,R,o=0.5,scale=0.1):
    with np.errstate(divide='ignore',invalid='ignore'):
        fr=np.where(R>0, np.minimum(1.0, E/(scale*np.where(R>0,R,1))), 1.0)
    return np.where(E>0, o+(1-o)*fr, 0.0)
def ctxs(v, tb, B=8, K=3, M=1024, Ms=512, freeze=300, dil=1, shared=False):
    """returns (seq raw, seasonal raw) ; seasonal keys in own table of Ms bits, or shared with seq table (M)."""
    n=len(v); o1=np.zeros(n); o2=np.zeros(n); T=bytearray(M); TS=T if shared else bytearray(Ms); MS=M if shared else Ms
    lo=hi=0.0; hist=[]
    for t in range(n):
        x=v[t]
        if t==0: lo=hi=x
        if t<freeze: lo=min(lo,x); hi=max(hi,x)
        w=(hi-lo)/B
        q=min(max(int(math.floor((x-lo)/w)),-2),B+1) if w>0 else 0
        h=fnv(FNV0,q+7); nov=0; used=0
        for k in range(1,min(K,len(hist))+1):
            h=fnv(h,hist[-k]+7+16*k); key=(h>>7)%M
            nov+=T[key]==0; T[key]=1; used+=1
        o1[t]=nov/used if used else 0.0
        hist.append(q); hist[:]=hist[-K:]
        b=int(tb[t])+1000
        o2[t]=1.0 if TS[(fnv(fnv(FNV0^0x9e3779b9,q+7),b)>>7)%MS]==0 else 0.0
        for dq in range(-dil,dil+1):
            TS[(fnv(fnv(FNV0^0x9e3779b9,q+dq+7),b)>>7)%MS]=1
    return o1,o2
def senv(v, tb, nb=24, B=8, freeze=300, mind=1, mode='bin'):
    """seasonal envelope: per bucket min/max of quantised level. raw = excess levels beyond bucket envelope."""
    n=len(v); out=np.zeros(n); LO=[None]*nb; HI=[None]*nb; lo=hi=0.0
    for t in range(n):
        x=v[t]
        if t==0: lo=hi=x
        if t<freeze: lo=min(lo,x); hi=max(hi,x)
        w=(hi-lo)/B
        q=min(max(int(math.floor((x-lo)/w)),-2),B+1) if w>0 else 0
        b=int(tb[t])
        if LO[b] is None: LO[b]=HI[b]=q; continue
        d=max(q-HI[b], LO[b]-q, 0)
        if mode=='bin': out[t]=1.0 if d>=mind else 0.0
        else: out[t]=min(1.0, d/B)
        LO[b]=min(LO[b],q); HI[b]=max(HI[b],q)
    return out
def recstats(v):
    """k[t]: number of exceedance samples before t (counting from t=1), n=t"""
    n=len(v); K=np.zeros(n); lo=hi=v[0]; k=0
    for t in range(1,n):
        x=v[t]; K[t]=k
        if x>hi or x<lo: k+=1
        lo=min(lo,x); hi=max(hi,x)
    return K
def KR(): return comp('K', lambda f: recstats(f["v"]))
def robz(v, alpha=0.01, warm=100, c=3.0, rel=1e-3, sa=0.1, zc=4.0):
    """Huberised EWMA baseline. returns z (unclipped) and level-shift stat |ewma_sa(clip(z,±zc))|"""
    n=len(v); Z=np.zeros(n); L=np.zeros(n); m=v[0]; var=0.0; e=0.0
    for t in range(1,n):
        x=v[t]; d=x-m; sd=max(math.sqrt(var), max(rel*abs(m),1e-9))
        z=d/sd
        if t>=warm:
            Z[t]=z; e+=sa*(max(-zc,min(zc,z))-e); L[t]=abs(e)
        a=max(alpha,1.0/(t+1))
        dc=max(-c*sd,min(c*sd,d)) if t>=warm else d
        m+=a*dc; var=(1-a)*(var+a*dc*dc)
    return Z,L
def robz2(v, alpha=0.003, warm=100, c=3.0, rel=1e-3, sa=0.1, zc=4.0):
    """as robz, plus VS = ewma_sa(min(|z|,zc))"""
    n=len(v); L=np.zeros(n); V=np.zeros(n); m=v[0]; var=0.0; e=0.0; ea=0.0
    for t in range(1,n):
        x=v[t]; d=x-m; sd=max(math.sqrt(var), max(rel*abs(m),1e-9))
        z=d/sd
        if t>=warm:
            zz=max(-zc,min(zc,z)); e+=sa*(zz-e); ea+=sa*(abs(zz)-ea); L[t]=abs(e); V[t]=ea
        a=max(alpha,1.0/(t+1))
        dc=max(-c*sd,min(c*sd,d)) if t>=warm else d
        m+=a*dc; var=(1-a)*(var+a*dc*dc)
    return L,V
def season_d(v, tb, nb=24, B=8, freeze=300, dil=1):
    """direct (collision-free) seasonal bitmap: bit[b*(B+4) + q+2]; raw 1 if unseen; insert q-dil..q+dil"""
    n=len(v); out=np.zeros(n); W=B+4; T=np.zeros(nb*W,bool); lo=hi=0.0
    for t in range(n):
        x=v[t]
        if t==0: lo=hi=x
        if t<freeze: lo=min(lo,x); hi=max(hi,x)
        w=(hi-lo)/B
        q=min(max(int(math.floor((x-lo)/w)),-2),B+1) if w>0 else 0
        b=int(tb[t])*W
        out[t]=0.0 if T[b+q+2] else 1.0
        for dq in range(max(-2,q-dil),min(B+1,q+dil)+1): T[b+dq+2]=True
    return out
def robz3(v, alpha=0.003, warm=100, c=3.0, rel=1e-3, sa=0.1, zc=4.0):
    n=len(v); L=np.zeros(n); SD=np.zeros(n); m=v[0]; var=0.0; e=0.0
    for t in range(1,n):
        x=v[t]; d=x-m; sd=max(math.sqrt(var), max(rel*abs(m),1e-9)); SD[t]=sd
        z=d/sd
        if t>=warm:
            zz=max(-zc,min(zc,z)); e+=sa*(zz-e); L[t]=abs(e)
        a=max(alpha,1.0/(t+1))
        dc=max(-c*sd,min(c*sd,d)) if t>=warm else d
        m+=a*dc; var=(1-a)*(var+a*dc*dc)
    return L,SD
def season_d2(v, tb, nb=24, B=8, freeze=300, dil=1, start=None):
    """as season_d but table untouched (and raw 0) until the quantiser is frozen (t >= start, default freeze)"""
    if start is None: start=freeze
    n=len(v); out=np.zeros(n); W=B+4; T=np.zeros(nb*W,bool); lo=hi=0.0
    for t in range(n):
        x=v[t]
        if t==0: lo=hi=x
        if t<freeze: lo=min(lo,x); hi=max(hi,x)
        if t<start: continue
        w=(hi-lo)/B
        q=min(max(int(math.floor((x-lo)/w)),-2),B+1) if w>0 else 0
        b=int(tb[t])*W
        out[t]=0.0 if T[b+q+2] else 1.0
        for dq in range(max(-2,q-dil),min(B+1,q+dil)+1): T[b+dq+2]=True
    return out
def season_d3(v, tb, nb=24, B=8, freeze=300, dil=1, tdil=1):
    """season_d2 with time dilation: insert into buckets b-tdil..b+tdil (cyclic)"""
    n=len(v); out=np.zeros(n); W=B+4; T=np.zeros(nb*W,bool); lo=hi=0.0
    for t in range(n):
        x=v[t]
        if t==0: lo=hi=x
        if t<freeze: lo=min(lo,x); hi=max(hi,x); continue
        w=(hi-lo)/B
        q=min(max(int(math.floor((x-lo)/w)),-2),B+1) if w>0 else 0
        b=int(tb[t])
        out[t]=0.0 if T[b*W+q+2] else 1.0
        for db in range(-tdil,tdil+1):
            bb=((b+db)%nb)*W
            for dq in range(max(-2,q-dil),min(B+1,q+dil)+1): T[bb+dq+2]=True
    return out
