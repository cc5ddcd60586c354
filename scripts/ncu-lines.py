#!/usr/bin/env python3
"""Summarises a gzipped `ncu --page source --csv --print-source sass` file (gpu-run.sh profile writes them).

Usage: scripts/ncu-lines.py source-ForwardKernel.csv.gz [LAUNCHES_PER_LINE]
Prints executed instructions by opcode, stall reasons, and the SASS lines run at least a fifth as often as
LAUNCHES_PER_LINE (say, the warp-steps of the launch) with their count per step: the loop as the card ran it.
"""
import collections
import csv
import gzip
import re
import sys

rows = list(csv.reader(gzip.open(sys.argv[1], "rt")))
header = rows[1]
column = {name: i for i, name in enumerate(header)}
stalls = [name for name in header if name.startswith("stall_") and "Not Issued" not in name]
executed = collections.Counter()
sampled = collections.Counter()
reasons = collections.Counter()
lines = []
for row in rows[2:]:
    if len(row) < len(header):
        continue
    source = row[column["Source"]].strip()
    count = int(row[column["Instructions Executed"]] or 0)
    samples = int(row[column["Warp Stall Sampling (All Samples)"]] or 0)
    opcode = re.sub(r"^@!?U?P\w+\s+", "", source).split(" ")[0].split(".")[0]
    executed[opcode] += count
    sampled[opcode] += samples
    for name in stalls:
        reasons[name[6:]] += int(row[column[name]] or 0)
    lines.append((row[0][-5:], source, count))

total, samples = sum(executed.values()), max(1, sum(sampled.values()))
print(f"{total} instructions executed, {samples} stall samples")
print("by opcode:", ", ".join(f"{k} {100 * v / total:.1f}%" for k, v in executed.most_common(20)))
print("stalls:", ", ".join(f"{k} {100 * v / samples:.1f}%" for k, v in reasons.most_common(10)))
if len(sys.argv) > 2:
    steps = float(sys.argv[2])
    for address, source, count in lines:
        if count >= 0.2 * steps:
            print(f"{address} {count / steps:5.2f} {source[:90]}")
