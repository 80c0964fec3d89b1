#!/usr/bin/env python3
"""Where a fuzz run's new edges are: reads the `NEW_PC` lines libFuzzer prints with `-print_pcs=1`
(scripts/fuzz-campaign.sh passes it; each log line is prefixed with the seconds since the run
started) and names the source of each edge, from the fuzz binary's line tables (`addr2line`,
the fuzz profile keeps `debug = 1`).

    fuzz-new-edges.py LOG BIN [FROM_SECONDS]

FROM_SECONDS defaults to half the run: the edges found in the last half, the ones that decide
whether a run plateaued (scripts/fuzz-plateau.py). `0` names every edge the run found after
loading its corpus (libFuzzer prints no `NEW_PC` for what the corpus already covers). Prints the count per origin (this workspace's crates by crate, each
dependency by crate, the standard library) and, for this workspace's edges, the functions and
lines. The runtime address of each edge is turned back into a file address with the PC table's
load address libFuzzer prints at start (`INFO: Loaded 1 PC tables ... [0x…,0x…)`) and the
`__sancov_pcs` section's address in the binary, so ASLR needs no switching off."""
import collections
import re
import subprocess
import sys

log, binary = sys.argv[1:3]
from_t = float(sys.argv[3]) if len(sys.argv) > 3 else None

pcs_start = None
new = []  # (seconds, runtime address)
end = 0.0
for line in open(log, errors="replace"):
    m = re.match(r"(\d+\.\d) ", line)
    if m:
        end = max(end, float(m[1]))
    m = re.search(r"Loaded 1 PC tables \(\d+ PCs\): \d+ \[(0x[0-9a-f]+),", line)
    if m:
        pcs_start = int(m[1], 16)
    m = re.match(r"(\d+\.\d) \s*NEW_PC: (0x[0-9a-f]+)", line)
    if m:
        new.append((float(m[1]), int(m[2], 16)))
if pcs_start is None:
    sys.exit(f"{log}: no `Loaded 1 PC tables` line (was the run started with -print_pcs=1?)")
if from_t is None:
    from_t = end / 2

sections = subprocess.run(["readelf", "-SW", binary], capture_output=True, text=True, check=True)
m = re.search(r"__sancov_pcs\s+\S+\s+([0-9a-f]+)", sections.stdout)
if not m:
    sys.exit(f"{binary}: no __sancov_pcs section")
base = pcs_start - int(m[1], 16)

wanted = [pc for t, pc in new if t >= from_t]
# NEW_PC prints the next instruction's address (pc + 1 on x86); the edge is the one before it.
addrs = [hex(pc - 1 - base) for pc in wanted]
frames = []  # per edge: [(function, file, line)] innermost first
if addrs:
    out = subprocess.run(
        ["addr2line", "-e", binary, "-f", "-C", "-i", "-a", *addrs],
        capture_output=True, text=True, check=True,
    ).stdout.splitlines()
    cur = None
    i = 0
    while i < len(out):
        if re.match(r"0x[0-9a-f]+$", out[i]):
            cur = []
            frames.append(cur)
            i += 1
            continue
        func, loc = out[i], out[i + 1] if i + 1 < len(out) else "??:0"
        file, _, ln = loc.rpartition(":")
        cur.append((func, file, ln.split(" ")[0]))
        i += 2


MEMBERS = ["monitor-core", "monitor-bus", "monitor-strategies", "monitors-manager",
           "monitorables-store", "heartbeat", "bins", "bench", "fuzz"]
# Their crate names, as a demangled path starts (the fuzz package's library is `fuzz_support`).
OURS = {m.replace("-", "_") for m in MEMBERS if m != "fuzz"} | {"fuzz_support"}


def origin(func, path):
    """(kind, crate, file): this workspace's crate, a dependency, the standard library, or
    unknown. By the file where it is a Rust source; otherwise (some line-table entries point into
    aws-lc's generated assembly, whose debug ranges overlap the Rust code) by the crate that
    starts the function's demangled path."""
    if path.endswith(".rs"):
        # Any checkout of this workspace (the binary may have been built from another clone).
        m = re.search(r"/(%s)/(.*)$" % "|".join(MEMBERS), path)
        if m and "/registry/" not in path:
            return ("ours", m[1], f"{m[1]}/{m[2]}")
        m = re.search(r"/registry/src/[^/]+/([^/]+?)-\d[^/]*/", path)
        if m:
            return ("dependency", m[1].replace("-", "_"), path)
        if path.startswith("/rustc/"):
            return ("std", "std", path)
    name = re.sub(r"^(<|&|mut |dyn |\*const |\*mut )+", "", func)
    crate = name.split("::")[0]
    if crate in OURS:
        return ("ours", crate, "?")
    if crate in ("core", "alloc", "std"):
        return ("std", "std", path)
    if "::" in name and re.match(r"^[a-z_][a-z0-9_]*$", crate):
        return ("dependency", crate, path)
    return ("unknown", "??", path)


counts = collections.Counter()
funcs = collections.defaultdict(collections.Counter)  # per origin: the functions, by edges
for chain in frames:
    func, file, ln = chain[0] if chain else ("??", "??", "0")
    kind, name, rel = origin(func, file)
    counts[(kind, name)] += 1
    # The innermost function, and the outermost it was inlined into where they differ.
    outer = chain[-1][0] if chain else func
    where = func if func == outer else f"{func} (in {outer})"
    if kind == "ours" and rel != "?":
        where = f"{rel}:{ln} {where}"
    funcs[(kind, name)][where] += 1

print(f"{len(wanted)} new edges from {from_t:.0f} s to {end:.0f} s:")
for key, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
    print(f"  {n:6} {key[0]} {key[1]}")
    shown = sorted(funcs[key].items(), key=lambda kv: (-kv[1], kv[0]))
    # Every edge of this workspace's code; the three commonest functions of any other origin.
    for where, m in shown if key[0] == "ours" else shown[:3]:
        print(f"           {m:4} {where[:160]}")
