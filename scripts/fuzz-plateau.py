#!/usr/bin/env python3
"""One row of the campaign table of docs/RELIABILITY.md from a libFuzzer log whose lines are
prefixed with the seconds since the run started (scripts/fuzz-campaign.sh writes such logs).

    fuzz-plateau.py LOG TARGET SECONDS CORPUS_FILES CORPUS_BYTES CRASHES

Columns: target, run time, executions and exec/s (libFuzzer's final stats), final `cov` (edges)
and `ft` (features), when `cov` last grew (seconds, share of the run), the edges gained in the last
half of the run, plateau (yes: no new edge in the last half), corpus kept, crashes. Lines naming
an error or a panic are printed before the row."""
import re
import sys

log, target, secs, files, size, crashes = sys.argv[1:7]
points = []  # (seconds, cov) at each growth of cov
cov = ft = execs = rate = 0
end = 0.0
for line in open(log, errors="replace"):
    m = re.match(r"(\d+\.\d) #(\d+)\s+\w+\s+cov: (\d+) ft: (\d+)", line)
    if m:
        t, c, f = float(m[1]), int(m[3]), int(m[4])
        if not points or c > points[-1][1]:
            points.append((t, c))
        cov, ft, end = c, f, t
    m = re.search(r"stat::number_of_executed_units:\s+(\d+)", line)
    if m:
        execs = int(m[1])
    m = re.search(r"stat::average_exec_per_sec:\s+(\d+)", line)
    if m:
        rate = int(m[1])
    if "ERROR" in line or "panicked at" in line or "Test unit written" in line:
        print("   ", line.rstrip())
run = max(end, 1.0)
last_t = points[-1][0] if points else 0.0
half = [c for t, c in points if t <= run / 2]
gained = cov - (half[-1] if half else 0)
print(
    f"| `{target}` | {secs} s | {execs:,} | {rate:,} | {cov:,} | {ft:,} | "
    f"{last_t:.0f} s ({100 * last_t / run:.0f} %) | +{gained} | {'yes' if gained == 0 else 'no'} | "
    f"{int(files):,}, {int(size) // 1024} KB | {crashes} |"
)
