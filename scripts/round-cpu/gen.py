#!/usr/bin/env python3
"""Inputs for the #14 / #16 measurements (docs/BENCHMARKS.md "Instructions per system round",
docs/RELIABILITY.md "Bounded memory per round").

  gen.py config DIR N URL      DIR/general/systems_config.ini with N systems polling URL
  gen.py hostile FILE [SERIES] the node_exporter fixture followed by SERIES (default 1,000,000)
                               series of a metric no monitor reads (about 14 MB; not committed)
  gen.py hostile-cpu FILE      the fixture followed by node_cpu_seconds_total series up to 15 MiB
                               (a family the system monitor reads: stopped by the series cap)
"""
import os
import sys

FIXTURE = os.environ.get("FIXTURE", "/work/shared/fixtures/node_exporter/metrics.txt")


def config(out_dir, n, url):
    os.makedirs(os.path.join(out_dir, "general"), exist_ok=True)
    with open(os.path.join(out_dir, "general", "systems_config.ini"), "w") as f:
        for i in range(n):
            f.write(f"[system_{i}]\nid = system_{i}\nparent_id = GENERAL\nname = host_{i}\n"
                    f"exporter_url = {url}\nmonitor_system = true\n\n")


def hostile(path, series):
    with open(FIXTURE) as f:
        body = f.read()
    with open(path, "w") as f:
        f.write(body)
        for i in range(series):
            f.write(f'h{{i="{i}"}} 1\n')


def hostile_cpu(path, limit=15 * 1024 * 1024):
    with open(FIXTURE) as f:
        body = f.read()
    size = len(body)
    with open(path, "w") as f:
        f.write(body)
        i = 0
        while size < limit:
            line = f'node_cpu_seconds_total{{cpu="{i}",mode="idle"}} 1\n'
            f.write(line)
            size += len(line)
            i += 1


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "config":
        config(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    elif cmd == "hostile":
        hostile(sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 1_000_000)
    elif cmd == "hostile-cpu":
        hostile_cpu(sys.argv[2])
    else:
        sys.exit(__doc__)
