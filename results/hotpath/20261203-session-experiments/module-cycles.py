import os,re,sys
mods={}
for root,_,files in os.walk('.'):
    for f in files:
        if not f.endswith('.rs'): continue
        p=os.path.join(root,f)[2:]
        name=p[:-3].replace('/mod','')
        # group submodules of writer and handlers into their file-level names
        mods[name]=open(p).read()
names=set(mods)
def target(path):
    parts=path.split('::')
    best=None
    for i in range(len(parts),0,-1):
        cand='/'.join(parts[:i])
        if cand in names: return cand
    return None
edges={n:set() for n in names}
for n,src in mods.items():
    # strip test modules
    src=src.split("#[cfg(test)]")[0]
    src="\n".join(l for l in src.split("\n") if not l.strip().startswith("//"))
    for m in re.finditer(r'crate::([a-z_]+(?:::[a-z_]+)*)',src):
        t=target(m.group(1).replace('::','/'))
        if t and t!=n: edges[n].add(t)
    # super:: references
    for m in re.finditer(r'super::([a-z_]+)',src):
        par='/'.join(n.split('/')[:-1])
        cand=(par+'/'+m.group(1)) if par else m.group(1)
        if cand in names and cand!=n: edges[n].add(cand)
        elif par in names and par!=n: edges[n].add(par)
# tarjan
idx={};low={};st=[];on=set();sccs=[];c=[0]
sys.setrecursionlimit(10000)
def sc(v):
    idx[v]=low[v]=c[0];c[0]+=1;st.append(v);on.add(v)
    for w in edges[v]:
        if w not in idx: sc(w);low[v]=min(low[v],low[w])
        elif w in on: low[v]=min(low[v],idx[w])
    if low[v]==idx[v]:
        s=[]
        while True:
            w=st.pop();on.discard(w);s.append(w)
            if w==v:break
        sccs.append(s)
for v in names:
    if v not in idx: sc(v)
for s in sccs:
    if len(s)>1: print(len(s),sorted(s))
if len(sys.argv)>1:
    for n in sorted(names): print(n,'->',sorted(edges[n]))
