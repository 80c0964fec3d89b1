#!/usr/bin/env python3
"""Where a fuzz run's new edges are: reads the `NEW_PC` lines libFuzzer prints with `-print_pcs=1`
(scripts/fuzz-campaign.sh passes it; each log line is prefixed with the seconds since the run
started) and names the source of each edge, from the fuzz binary's line tables (`addr2line`,
the fuzz profile keeps `debug = 1`).

    fuzz-new-edges.py LOG BIN [FROM_SECONDS] [--replay DIR... [--runs N]]
    fuzz-new-edges.py - BIN --replay DIR... [--runs N]      (the replays only)
    fuzz-new-edges.py LOG BIN [FROM_SECONDS] --against OTHER_BIN DIR...

FROM_SECONDS defaults to half the run: the edges found in the last half, the ones that decide
whether a run plateaued (scripts/fuzz-plateau.py). `0` names every edge the run found after
loading its corpus (libFuzzer prints no `NEW_PC` for what the corpus already covers). Prints the
count per origin (this workspace's crates by crate, each dependency by crate, the standard library
with the crates it vendors) and, for this workspace's edges, the functions and lines. An edge is
placed by its innermost frame: std's hashbrown probing inlined into one of our functions is std's.
The runtime address of each edge is turned back into a file address with the PC table's load
address libFuzzer prints at start (`INFO: Loaded 1 PC tables ... [0x…,0x…)`) and the
`__sancov_pcs` section's address in the binary, so ASLR needs no switching off.

With `--replay DIR...` (the corpus the run ends with, and its seeds) the folders are replayed N
times (default 3), each in a fresh process, through libFuzzer's merge (`-merge_control_file`
lists, per input, the PC-table entries it reached), and each new edge is classed by what the
replays reach: `stable` (every replay: coverage the corpus now holds), `unstable` (some replays,
not all: the edge depends on something besides the input, such as a random hash seed, a buffer's
alignment or the RNG reseeding after so many bytes) or `unkept` (no replay: the input that
reached it was not kept, or the edge is too unstable for the replays to meet it). A last half
with no `stable` edge found nothing the corpus can hold: what it found is noise. Also prints the
replays' own spread: how many edges some replays reach and others do not, by origin.

With `--against BIN DIR...` (another target's binary and corpus; both built from one checkout)
each new edge is classed by whether its source line is one the other target's corpus reaches
(`elsewhere`) or not (`only here`): `manager_diff` reaches the config parser through raw message
bodies, which `config_message` fuzzes directly. A line is coarser than an edge: `elsewhere` says
the other target runs that line, not that it takes the same branch there."""
import argparse
import collections
import os
import re
import subprocess
import sys
import tempfile

ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
ap.add_argument("log")
ap.add_argument("binary")
ap.add_argument("from_t", nargs="?", type=float, default=None)
ap.add_argument("--replay", nargs="+", metavar="DIR", default=[])
ap.add_argument("--runs", type=int, default=3)
ap.add_argument("--against", nargs="+", metavar=("BIN", "DIR"), default=[])
args = ap.parse_args()
log, binary, from_t = args.log, args.binary, args.from_t

pcs_start = None
new = []  # (seconds, runtime address)
end = 0.0
for line in open(log, errors="replace") if log != "-" else []:
    m = re.match(r"(\d+\.\d) ", line)
    if m:
        end = max(end, float(m[1]))
    m = re.search(r"Loaded 1 PC tables \(\d+ PCs\): \d+ \[(0x[0-9a-f]+),", line)
    if m:
        pcs_start = int(m[1], 16)
    m = re.match(r"(\d+\.\d) \s*NEW_PC: (0x[0-9a-f]+)", line)
    if m:
        new.append((float(m[1]), int(m[2], 16)))
if pcs_start is None and log != "-":
    sys.exit(f"{log}: no `Loaded 1 PC tables` line (was the run started with -print_pcs=1?)")
if from_t is None:
    from_t = end / 2


def pcs_section(binary):
    """The `__sancov_pcs` section's (address, file offset, size)."""
    sections = subprocess.run(["readelf", "-SW", binary], capture_output=True, text=True,
                              check=True)
    m = re.search(r"__sancov_pcs\s+\S+\s+([0-9a-f]+)\s+([0-9a-f]+)\s+([0-9a-f]+)",
                  sections.stdout)
    if not m:
        sys.exit(f"{binary}: no __sancov_pcs section")
    return tuple(int(g, 16) for g in m.groups())


pcs_addr = pcs_section(binary)[0]
wanted = [pc for t, pc in new if t >= from_t]
# NEW_PC prints the next instruction's address (pc + 1 on x86); the edge is the one before it.
edges = [pc - 1 - (pcs_start - pcs_addr) for pc in wanted]


def symbolize(addrs, binary=binary):
    """Per file address, its frames [(function, file, line)], innermost first."""
    frames = []
    if not addrs:
        return frames
    out = subprocess.run(
        ["addr2line", "-e", binary, "-f", "-C", "-i", "-a", *map(hex, addrs)],
        capture_output=True, text=True, check=True,
    ).stdout.splitlines()
    i = 0
    while i < len(out):
        if re.match(r"0x[0-9a-f]+$", out[i]):
            frames.append([])
            i += 1
            continue
        func, loc = out[i], out[i + 1] if i + 1 < len(out) else "??:0"
        file, _, ln = loc.rpartition(":")
        frames[-1].append((func, file, ln.split(" ")[0]))
        i += 2
    return frames


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
        # The standard library, and the crates it vendors (its hashbrown, under /rust/deps/).
        if path.startswith(("/rustc/", "/rust/deps/")):
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


def report(title, frames, classes=None):
    """Prints the count per origin of the edges whose `symbolize` frames are given and, for this
    workspace's code, every function and line; with `classes` (one label per edge) the counts are
    split by label."""
    counts = collections.Counter()
    split = collections.defaultdict(collections.Counter)  # per origin: the counts per label
    funcs = collections.defaultdict(collections.Counter)  # per origin: the functions, by edges
    for n, chain in enumerate(frames):
        func, file, ln = chain[0] if chain else ("??", "??", "0")
        kind, name, rel = origin(func, file)
        counts[(kind, name)] += 1
        # The innermost function, and the outermost it was inlined into where they differ.
        outer = chain[-1][0] if chain else func
        where = func if func == outer else f"{func} (in {outer})"
        if kind == "ours" and rel != "?":
            where = f"{rel}:{ln} {where}"
        if classes:
            split[(kind, name)][classes[n]] += 1
            where = f"[{classes[n]}] {where}"
        funcs[(kind, name)][where] += 1
    print(title)
    for key, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        labels = ", ".join(f"{c} {label}" for label, c in sorted(split[key].items()))
        print(f"  {n:6} {key[0]} {key[1]}" + (f" ({labels})" if labels else ""))
        shown = sorted(funcs[key].items(), key=lambda kv: (-kv[1], kv[0]))
        # Every edge of this workspace's code; the three commonest functions of any other origin.
        for where, m in shown if key[0] == "ours" else shown[:3]:
            print(f"           {m:4} {where[:160]}")


def pc_table(binary=binary):
    """The binary's PC table: file address of each entry, by index. In a position-independent
    binary the entries are relocations (R_X86_64_RELATIVE, the address in the addend)."""
    pcs_addr, pcs_off, pcs_size = pcs_section(binary)
    with open(binary, "rb") as f:
        f.seek(pcs_off)
        raw = f.read(pcs_size)
    table = [int.from_bytes(raw[i:i + 8], "little") for i in range(0, len(raw), 16)]
    relocs = subprocess.run(["readelf", "-rW", binary], capture_output=True, text=True,
                            check=True).stdout
    for line in relocs.splitlines():
        cols = line.split()
        if len(cols) == 4 and cols[2] == "R_X86_64_RELATIVE":
            off = int(cols[0], 16) - pcs_addr
            if 0 <= off < pcs_size and off % 16 == 0:
                table[off // 16] = int(cols[3], 16)
    return table


def replay(dirs, binary=binary):
    """The PC-table indices the folders reach, in one fresh process (libFuzzer's merge writes,
    per input, the entries it reached first as a `COV` line of its control file)."""
    with tempfile.TemporaryDirectory() as tmp:
        control, out = os.path.join(tmp, "control"), os.path.join(tmp, "out")
        os.mkdir(out)
        subprocess.run([binary, "-merge=1", f"-merge_control_file={control}", out, *dirs,
                        "-timeout=10", "-rss_limit_mb=2048"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        reached = set()
        for line in open(control, errors="replace"):
            if line.startswith("COV "):
                reached.update(int(x) for x in line.split()[2:])
        return reached


span = f"from {from_t:.0f} s to {end:.0f} s"
if log == "-" and not args.replay:
    sys.exit("LOG `-` reads no run: give --replay")
edge_frames = symbolize(edges)  # read once, for every report below
if not args.replay and not args.against:
    report(f"{len(edges)} new edges {span}:", edge_frames)
    sys.exit(0)

if args.replay:
    table = pc_table()
    index = {pc: i for i, pc in enumerate(table)}
    runs = [replay(args.replay) for _ in range(args.runs)]
    every, some = set.intersection(*runs), set.union(*runs)
    classes = []
    for pc in edges:
        i = index.get(pc)
        classes.append("stable" if i in every else "unstable" if i in some else "unkept")
    print(f"replays of {' '.join(args.replay)}: {', '.join(str(len(r)) for r in runs)} edges "
          f"reached; {len(every)} in every replay, {len(some - every)} only in some")
    if log != "-":
        report(f"{len(edges)} new edges {span}, by what the replays reach:", edge_frames,
               classes)
    if some - every:
        report(f"{len(some - every)} edges the replays reach only sometimes:",
               symbolize(sorted(table[i] for i in some - every)))

if args.against and log != "-":
    # Another target's binary and corpus: is the source line of each new edge one that target
    # reaches (its parser fuzzed more directly), or reached only here?
    other, dirs = args.against[0], args.against[1:]
    other_table = pc_table(other)
    reached = set().union(*(replay(dirs, other) for _ in range(args.runs)))
    lines = {(path, ln) for chain in symbolize([other_table[i] for i in reached], other)
             for _, path, ln in chain}
    labels = ["elsewhere" if chain and chain[0][1:] in lines else "only here"
              for chain in edge_frames]
    report(f"{len(edges)} new edges {span}, by whether {os.path.basename(other)}'s corpus "
           f"reaches their source line:", edge_frames, labels)
