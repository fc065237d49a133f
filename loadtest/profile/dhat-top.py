#!/usr/bin/env python3
# dhat-top.py DHAT_JSON N ROWS: bytes live at the heap peak per connection, by allocation site.
import json, sys, re
d=json.load(open(sys.argv[1])); n=int(sys.argv[2]); ft=d['ftbl']
rows=[]
for pp in d['pps']:
    if pp['gb'] < n*4: continue
    fr=[re.sub(r'^0x[0-9A-F]+: ','',ft[i]) for i in pp['fs']]
    key=[f for f in fr if re.search(r'wsgate|tungstenite|hyper|tokio|tracing', f) and not re.search(r'alloc::|raw_vec',f)][:3]
    rows.append((pp['gb']/n, pp['gbk']/n, pp['gb']/max(pp['gbk'],1), ' | '.join(k[:110] for k in key)))
rows.sort(key=lambda r:-r[0])
tot=sum(r[0] for r in rows)
print(f"sum of shown {tot:.0f} B/conn")
for r in rows[:int(sys.argv[3])]: print(f"{r[0]:7.1f} B/conn {r[1]:5.2f} blk/conn avg {r[2]:6.0f} B  {r[3]}")
