#!/usr/bin/env python3
"""Soak of the release binaries (issue #13): N monitors for M minutes, a broker outage for the
soak's vhost every --outage-every seconds, figures sampled every 10 s.

Driven by scripts/soak/soak.sh (which creates and deletes the vhost and the Redis keys). Needs
Python >= 3.9 and `pika` (soak.sh makes a venv with it under /tmp/soak-venv).

Outputs in --run-dir: logs of every binary, samples.csv, results.json, summary.md; with --out-dir
also copies samples.csv, results.json and summary.md there.
"""

import argparse
import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request

import pika

OUTAGE_DURATIONS = [30, 90, 30, 90, 30]
SAMPLE_EVERY = 10.0
RESUME_TIMEOUT = 180.0
C1_KEY = "c1_Monitors Manager"


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# --- Redis (tiny RESP client: no redis module needed) ----------------------------------------


class Redis:
    def __init__(self, host="127.0.0.1", port=6379):
        self.addr = (host, port)
        self.sock = None
        self.buf = b""

    def _conn(self):
        if self.sock is None:
            self.sock = socket.create_connection(self.addr, timeout=5)
            self.buf = b""
        return self.sock

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("redis closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n):
        while len(self.buf) < n + 2:
            chunk = self.sock.recv(max(65536, n))
            if not chunk:
                raise ConnectionError("redis closed")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def _reply(self):
        line = self._line()
        t, rest = line[:1], line[1:]
        if t == b"+":
            return rest.decode()
        if t == b"-":
            raise RuntimeError(rest.decode())
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n)
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self._reply() for _ in range(n)]
        raise RuntimeError(f"bad reply {line!r}")

    def cmd(self, *args):
        try:
            s = self._conn()
            out = b"*%d\r\n" % len(args)
            for a in args:
                a = a if isinstance(a, bytes) else str(a).encode()
                out += b"$%d\r\n%s\r\n" % (len(a), a)
            s.sendall(out)
            return self._reply()
        except Exception:
            if self.sock:
                self.sock.close()
            self.sock = None
            raise

    def delete_prefix(self, prefix):
        cursor, n = "0", 0
        while True:
            cursor, keys = self.cmd("SCAN", cursor, "MATCH", prefix + "*", "COUNT", 1000)
            cursor = cursor.decode()
            if keys:
                n += self.cmd("DEL", *keys)
            if cursor == "0":
                return n


# --- the test consumer ------------------------------------------------------------------------


class Consumer(threading.Thread):
    """Counts messages and distinct rounds (system_id, time) from queue soak_raw (bound to
    raw_data with '#'); reconnects on loss."""

    def __init__(self, url):
        super().__init__(daemon=True)
        self.params = pika.URLParameters(url)
        self.params.heartbeat = 30
        self.params.blocked_connection_timeout = 60
        self.lock = threading.Lock()
        self.messages = 0
        self.results = 0
        self.errors = 0
        self.unparsed = 0
        self.rounds = set()
        self.per_system = {}
        self.connects = 0
        self.connect_failures = 0
        self.last_msg_at = None
        self.watch_since = None
        self.first_since = None
        self.ready = threading.Event()
        self.stop = threading.Event()
        self.connected = False

    def watch(self, since):
        with self.lock:
            self.watch_since = since
            self.first_since = None

    def snapshot(self):
        with self.lock:
            return self.messages, len(self.rounds)

    def _on_message(self, ch, method, props, body):
        now = time.time()
        sid, t, kind = None, None, None
        try:
            v = json.loads(body)
            for k in ("result", "error"):
                if isinstance(v, dict) and k in v:
                    md = v[k].get("meta_data", {})
                    sid, t, kind = md.get("system_id"), md.get("time"), k
                    break
        except Exception:
            pass
        with self.lock:
            self.messages += 1
            self.last_msg_at = now
            if self.watch_since is not None and self.first_since is None and now > self.watch_since:
                self.first_since = now
            if sid is None:
                self.unparsed += 1
            else:
                if kind == "result":
                    self.results += 1
                else:
                    self.errors += 1
                key = hash((sid, t))
                if key not in self.rounds:
                    self.rounds.add(key)
                    self.per_system[sid] = self.per_system.get(sid, 0) + 1
        ch.basic_ack(method.delivery_tag)

    def run(self):
        while not self.stop.is_set():
            conn = None
            try:
                conn = pika.BlockingConnection(self.params)
                ch = conn.channel()
                ch.exchange_declare("raw_data", exchange_type="topic", durable=True)
                ch.queue_declare("soak_raw", durable=True)
                ch.queue_bind("soak_raw", "raw_data", routing_key="#")
                ch.basic_qos(prefetch_count=1000)
                ch.basic_consume("soak_raw", self._on_message)
                self.connects += 1
                self.connected = True
                self.ready.set()
                while not self.stop.is_set():
                    conn.process_data_events(time_limit=0.5)
            except Exception as e:  # connection lost / refused: retry
                self.connect_failures += 1
                if self.connected:
                    log(f"consumer: connection lost ({type(e).__name__}: {str(e)[:120]})")
                time.sleep(0.5)
            finally:
                self.connected = False
                if conn is not None:
                    try:
                        conn.close()
                    except Exception:
                        pass


# --- helpers ----------------------------------------------------------------------------------


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def cpu_seconds(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            parts = f.read().rsplit(")", 1)[1].split()
        return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def scrape(port):
    """Prometheus text -> {'name{labels}': value}; None if unreachable."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=3) as r:
            text = r.read().decode()
    except Exception:
        return None
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        try:
            k, v = line.rsplit(" ", 1)
            out[k] = float(v)
        except ValueError:
            pass
    return out


def metric(m, name):
    if m is None:
        return None
    return m.get(name)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def rabbitmqctl(*args):
    t0 = time.time()
    r = subprocess.run(["rabbitmqctl", *args], capture_output=True, text=True)
    if r.returncode != 0:
        log(f"rabbitmqctl {' '.join(args)} failed ({r.returncode}): {r.stderr.strip()[:300]}")
    return r.returncode, time.time() - t0


def write_config(cfg_dir, n, exporter_url):
    os.makedirs(os.path.join(cfg_dir, "general"), exist_ok=True)
    with open(os.path.join(cfg_dir, "general", "systems_config.ini"), "w") as f:
        for i in range(1, n + 1):
            f.write(
                f"[sys_{i:05d}]\nid = sys_{i:05d}\nparent_id = GENERAL\nname = host_{i:05d}\n"
                f"exporter_url = {exporter_url}\nmonitor_system = true\n\n"
            )


# --- main -------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=60)
    ap.add_argument("--monitors", type=int, default=10000)
    ap.add_argument("--outage-every", type=float, default=600)
    ap.add_argument("--period", type=int, default=60, help="SYSTEM_MONITOR_PERIOD_SECONDS")
    ap.add_argument("--vhost", required=True)
    ap.add_argument("--namespace", required=True)
    ap.add_argument("--run-dir", required=True)
    ap.add_argument("--bin-dir", required=True)
    ap.add_argument("--out-dir", default=None)
    args = ap.parse_args()

    run_dir, bin_dir = os.path.abspath(args.run_dir), os.path.abspath(args.bin_dir)
    os.makedirs(run_dir, exist_ok=True)
    url = "amqp://guest:guest@127.0.0.1:5672/" + urllib.parse.quote(args.vhost, safe="")
    redis_url = "redis://127.0.0.1:6379/"
    ns = args.namespace
    total = args.minutes * 60.0
    port = free_port()
    procs = {}  # name -> Popen
    logs = {}
    redis = Redis()

    def binpath(name):
        return os.path.join(bin_dir, name)

    def start(name, argv, extra_env=None, **kw):
        env = dict(os.environ, RUST_LOG="warn")
        env.update(extra_env or {})
        logs[name] = open(os.path.join(run_dir, f"{name}.log"), "w")
        p = subprocess.Popen([binpath(argv[0])] + argv[1:], stderr=logs[name], env=env, **kw)
        procs[name] = p
        log(f"started {name} pid {p.pid}")
        return p

    def cleanup_procs():
        for name, p in procs.items():
            if p.poll() is None:
                try:
                    p.kill()
                except OSError:
                    pass

    stop_requested = {"v": False}

    def on_term(signum, frame):
        stop_requested["v"] = True
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)

    try:
        # 1. exporter stand-in
        serve = start("bench-serve", ["bench", "serve", "--addr", "127.0.0.1:0"],
                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = serve.stdout.readline().strip()
        if not line.startswith("LISTENING "):
            raise SystemExit(f"bench serve said {line!r}")
        exporter_addr = line.split()[1]
        exporter_url = f"http://{exporter_addr}/metrics"
        log(f"exporter stand-in at {exporter_url}")

        # 2. config
        cfg_dir = os.path.join(run_dir, "config")
        write_config(cfg_dir, args.monitors, exporter_url)

        # 3. consumer first, so that raw_data exists and is bound before the first round
        consumer = Consumer(url)
        consumer.start()
        if not consumer.ready.wait(30):
            raise SystemExit("test consumer could not connect")

        # 4. binaries
        start("monitorables-store", ["monitorables-store", "--amqp-url", url,
                                     "--redis-url", redis_url, "--namespace", ns])
        start("health-checker", ["health-checker", "--amqp-url", url,
                                 "--redis-url", redis_url, "--namespace", ns])
        start("monitors-manager", ["monitors-manager", "--amqp-url", url,
                                   "--metrics-addr", f"127.0.0.1:{port}"],
              extra_env={"SYSTEM_MONITOR_PERIOD_SECONDS": str(args.period)})
        deadline = time.time() + 30
        while scrape(port) is None:
            if time.time() > deadline or procs["monitors-manager"].poll() is not None:
                raise SystemExit("monitors-manager /metrics never came up")
            time.sleep(0.2)
        time.sleep(1.0)
        t_cfg = time.time()
        r = subprocess.run([binpath("panic-config"), "--amqp-url", url, "--config-dir", cfg_dir],
                           capture_output=True, text=True, env=dict(os.environ, RUST_LOG="warn"))
        with open(os.path.join(run_dir, "panic-config.log"), "w") as f:
            f.write(r.stdout + r.stderr)
        log(f"panic-config exited {r.returncode} in {time.time() - t_cfg:.1f}s")
        if r.returncode != 0:
            raise SystemExit("panic-config failed: " + r.stderr[-500:])

        # 5. schedule
        t0 = time.time()
        outages = []
        k = 1
        while k * args.outage_every < total - 1e-6:
            d = min(OUTAGE_DURATIONS[(k - 1) % len(OUTAGE_DURATIONS)], args.outage_every / 3)
            outages.append({"index": k, "planned_start_s": k * args.outage_every,
                            "planned_duration_s": d})
            k += 1
        log(f"soak: {args.monitors} monitors, {args.minutes} min, outages {outages}")

        fields = ["elapsed_s", "rss_manager_kib", "rss_store_kib", "rss_health_kib",
                  "cpu_manager_s", "cpu_store_s", "cpu_health_s",
                  "monitors_running", "monitors_failing", "monitors_dead",
                  "rounds_total", "rounds_ok", "rounds_error", "rounds_timed_out", "deaths",
                  "publishes_ok", "publishes_failed", "publishes_unroutable",
                  "outbox_messages", "outbox_bytes", "outbox_dropped", "bus_reconnections",
                  "bus_connected", "consumer_messages", "consumer_distinct_rounds",
                  "c1_exists", "c1_timestamp", "c1_age_s", "in_outage"]
        samples_path = os.path.join(run_dir, "samples.csv")
        sf = open(samples_path, "w", newline="")
        w = csv.DictWriter(sf, fieldnames=fields)
        w.writeheader()
        samples = []
        pid = {n: procs[n].pid for n in ("monitors-manager", "monitorables-store", "health-checker")}

        def c1():
            try:
                raw = redis.cmd("GET", f"{ns}:{C1_KEY}")
            except Exception:
                return False, None
            if raw is None:
                return False, None
            try:
                return True, float(json.loads(raw).get("timestamp"))
            except Exception:
                return True, None

        def m_sum(m, name, labels):
            if m is None:
                return None
            vals = [m.get(f"{name}{{{l}}}") for l in labels]
            return sum(v for v in vals if v is not None)

        def sample(in_outage):
            now = time.time()
            m = scrape(port)
            msgs, distinct = consumer.snapshot()
            ex, ts = c1()
            row = {
                "elapsed_s": round(now - t0, 1),
                "rss_manager_kib": rss_kib(pid["monitors-manager"]),
                "rss_store_kib": rss_kib(pid["monitorables-store"]),
                "rss_health_kib": rss_kib(pid["health-checker"]),
                "cpu_manager_s": cpu_seconds(pid["monitors-manager"]),
                "cpu_store_s": cpu_seconds(pid["monitorables-store"]),
                "cpu_health_s": cpu_seconds(pid["health-checker"]),
                "monitors_running": metric(m, 'panic_monitors{state="running"}'),
                "monitors_failing": metric(m, 'panic_monitors{state="failing"}'),
                "monitors_dead": metric(m, 'panic_monitors{state="dead"}'),
                "rounds_total": m_sum(m, "panic_monitor_rounds_total",
                                      ['outcome="ok"', 'outcome="error"', 'outcome="timed_out"']),
                "rounds_ok": metric(m, 'panic_monitor_rounds_total{outcome="ok"}'),
                "rounds_error": metric(m, 'panic_monitor_rounds_total{outcome="error"}'),
                "rounds_timed_out": metric(m, 'panic_monitor_rounds_total{outcome="timed_out"}'),
                "deaths": metric(m, "panic_monitor_deaths_total"),
                "publishes_ok": metric(m, 'panic_raw_data_publishes_total{outcome="ok"}'),
                "publishes_failed": metric(m, 'panic_raw_data_publishes_total{outcome="failed"}'),
                "publishes_unroutable": metric(m, 'panic_raw_data_publishes_total{outcome="unroutable"}'),
                "outbox_messages": metric(m, "panic_manager_outbox_messages"),
                "outbox_bytes": metric(m, "panic_manager_outbox_bytes"),
                "outbox_dropped": metric(m, "panic_manager_outbox_dropped_total"),
                "bus_reconnections": metric(m, "panic_bus_reconnections_total"),
                "bus_connected": metric(m, "panic_bus_connected"),
                "consumer_messages": msgs,
                "consumer_distinct_rounds": distinct,
                "c1_exists": int(ex),
                "c1_timestamp": ts,
                "c1_age_s": None if ts is None else round(now - ts, 1),
                "in_outage": int(in_outage),
            }
            for key in list(row):
                if isinstance(row[key], float) and key not in ("elapsed_s", "c1_age_s", "c1_timestamp") \
                        and not key.startswith("cpu_") and row[key].is_integer():
                    row[key] = int(row[key])
            if ts is not None:
                row["c1_timestamp"] = round(ts, 3)
            for key in ("cpu_manager_s", "cpu_store_s", "cpu_health_s"):
                if row[key] is not None:
                    row[key] = round(row[key], 2)
            w.writerow(row)
            sf.flush()
            samples.append(row)
            return row, m

        crashed = []

        def check_alive():
            for n, p in procs.items():
                if p.poll() is not None and n not in [c["binary"] for c in crashed]:
                    crashed.append({"binary": n, "exit_code": p.returncode,
                                    "at_s": round(time.time() - t0, 1)})
                    log(f"!!! {n} exited with {p.returncode}")

        next_sample = t0
        oi = 0
        current = None  # outage in progress
        resume = None  # outage whose resume is being measured
        while True:
            now = time.time()
            el = now - t0
            if el >= total and current is None and resume is None:
                break
            if now >= next_sample:
                row, _ = sample(current is not None)
                next_sample += SAMPLE_EVERY
                if int(row["elapsed_s"]) % 60 < SAMPLE_EVERY:
                    log(f"t={row['elapsed_s']}s rss(mgr/store/hc)={row['rss_manager_kib']}/"
                        f"{row['rss_store_kib']}/{row['rss_health_kib']} KiB running="
                        f"{row['monitors_running']} rounds={row['rounds_total']} pub_ok="
                        f"{row['publishes_ok']} recv={row['consumer_messages']}/"
                        f"{row['consumer_distinct_rounds']} outbox={row['outbox_messages']} "
                        f"deaths={row['deaths']} drops={row['outbox_dropped']} c1_age={row['c1_age_s']}")
                check_alive()
            if current is None and oi < len(outages) and el >= outages[oi]["planned_start_s"]:
                current = outages[oi]
                oi += 1
                current["start_unix"] = time.time()
                current["start_s"] = round(current["start_unix"] - t0, 2)
                m = scrape(port)
                current["before"] = {"reconnections": metric(m, "panic_bus_reconnections_total"),
                                     "outbox_messages": metric(m, "panic_manager_outbox_messages")}
                rabbitmqctl("clear_permissions", "-p", args.vhost, "guest")
                rabbitmqctl("close_all_connections", "-p", args.vhost, "soak outage")
                # The hold is timed from the moment the connections are closed (rabbitmqctl can
                # take seconds on a loaded host; in the first hour-long run it was timed from
                # before clear_permissions, so the cut-offs were 20.9-28.7 s / 85-88 s).
                current["cut_unix"] = time.time()
                current["cut_s"] = round(current["cut_unix"] - t0, 2)
                log(f"outage {current['index']} started at {current['start_s']}s "
                    f"(connections closed at {current['cut_s']}s), for {current['planned_duration_s']}s")
                current["peak_outbox_messages"] = 0
                current["peak_outbox_bytes"] = 0
            if current is not None:
                m = scrape(port) if int(now * 4) % 4 == 0 else None
                if m is not None:
                    current["peak_outbox_messages"] = int(max(current["peak_outbox_messages"],
                                                              metric(m, "panic_manager_outbox_messages") or 0))
                    current["peak_outbox_bytes"] = int(max(current["peak_outbox_bytes"],
                                                           metric(m, "panic_manager_outbox_bytes") or 0))
                if time.time() >= current["cut_unix"] + current["planned_duration_s"]:
                    ex, ts = c1()
                    current["c1_ts_at_end"] = ts
                    rabbitmqctl("set_permissions", "-p", args.vhost, "guest", ".*", ".*", ".*")
                    current["end_unix"] = time.time()
                    current["end_s"] = round(current["end_unix"] - t0, 2)
                    current["duration_s"] = round(current["end_unix"] - current["start_unix"], 2)
                    current["cut_off_s"] = round(current["end_unix"] - current["cut_unix"], 2)
                    consumer.watch(current["end_unix"])
                    current["resume"] = {"consumer_message_s": None, "c1_timestamp_changed_s": None,
                                         "bus_connected_s": None}
                    log(f"outage {current['index']} ended at {current['end_s']}s")
                    resume, current = current, None
            if resume is not None:
                rs = resume["resume"]
                since = time.time() - resume["end_unix"]
                if rs["consumer_message_s"] is None and consumer.first_since is not None:
                    rs["consumer_message_s"] = round(consumer.first_since - resume["end_unix"], 2)
                if rs["c1_timestamp_changed_s"] is None:
                    ex, ts = c1()
                    if ts is not None and ts != resume["c1_ts_at_end"]:
                        rs["c1_timestamp_changed_s"] = round(time.time() - resume["end_unix"], 2)
                        rs["c1_new_timestamp_minus_end_s"] = round(ts - resume["end_unix"], 2)
                if rs["bus_connected_s"] is None:
                    m = scrape(port)
                    if metric(m, "panic_bus_connected") == 1:
                        rs["bus_connected_s"] = round(time.time() - resume["end_unix"], 2)
                        resume["after"] = {"reconnections": metric(m, "panic_bus_reconnections_total")}
                if all(v is not None for k, v in rs.items() if k.endswith("_s") and k != "c1_new_timestamp_minus_end_s") \
                        or since > RESUME_TIMEOUT:
                    if since > RESUME_TIMEOUT:
                        resume["resume_timed_out"] = True
                    log(f"outage {resume['index']} resume: {rs}")
                    resume = None
            time.sleep(0.25)

        # 6. shutdown
        final_row, final_m = sample(False)
        check_alive()
        exits = {}
        for n in ("monitors-manager", "health-checker", "monitorables-store"):
            p = procs[n]
            if p.poll() is not None:
                exits[n] = {"exit_code": p.returncode, "exit_s": None, "note": "already exited"}
                continue
            ts0 = time.time()
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            exits[n] = {"exit_code": p.returncode, "exit_s": round(time.time() - ts0, 2)}
            log(f"{n}: SIGTERM -> exit {p.returncode} in {exits[n]['exit_s']}s")
        serve.stdin.close()
        try:
            serve.wait(timeout=10)
        except subprocess.TimeoutExpired:
            serve.kill()

        # drain
        last, stable_since = None, time.time()
        drain_start = time.time()
        while time.time() - stable_since < 15 and time.time() - drain_start < 600:
            cur = consumer.snapshot()
            if cur != last:
                last, stable_since = cur, time.time()
            time.sleep(0.5)
        consumer.stop.set()
        consumer.join(5)
        msgs, distinct = consumer.snapshot()
        log(f"drained in {time.time() - drain_start:.1f}s: {msgs} messages, {distinct} distinct rounds")

        # 7. results
        def stat(col):
            vals = [s[col] for s in samples if s[col] is not None]
            if not vals:
                return {}
            at10 = [s[col] for s in samples if s[col] is not None and s["elapsed_s"] >= 600]
            return {"start": vals[0], "after_10min": at10[0] if at10 else None,
                    "min": min(vals), "peak": max(vals), "final": vals[-1]}

        per = list(consumer.per_system.values())
        missing_systems = args.monitors - len(per)
        fm = final_m or {}

        def g(name):
            v = fm.get(name)
            return int(v) if isinstance(v, float) and v.is_integer() else v

        results = {
            "config": {"minutes": args.minutes, "monitors": args.monitors,
                       "outage_every_s": args.outage_every, "period_s": args.period,
                       "sample_every_s": SAMPLE_EVERY, "vhost": args.vhost, "namespace": ns,
                       "health_checker_ping_interval": "30s (default)",
                       "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(t0)),
                       "host_cores": os.cpu_count(),
                       "build": build_info(bin_dir)},
            "outages": [{k: v for k, v in o.items() if not k.endswith("_unix")} for o in outages],
            "final_counters": {
                "monitors_running": g('panic_monitors{state="running"}'),
                "monitors_failing": g('panic_monitors{state="failing"}'),
                "monitors_dead": g('panic_monitors{state="dead"}'),
                "rounds_total": final_row["rounds_total"],
                "rounds_ok": final_row["rounds_ok"],
                "rounds_error": final_row["rounds_error"],
                "rounds_timed_out": final_row["rounds_timed_out"],
                "deaths": final_row["deaths"],
                "publishes_ok": final_row["publishes_ok"],
                "publishes_failed": final_row["publishes_failed"],
                "publishes_unroutable": final_row["publishes_unroutable"],
                "outbox_dropped": final_row["outbox_dropped"],
                "outbox_dropped_bytes": g("panic_manager_outbox_dropped_bytes_total"),
                "bus_outbox_dropped": g("panic_bus_outbox_dropped_total"),
                "bus_reconnections": final_row["bus_reconnections"],
                "bus_consumer_restarts": g("panic_bus_consumer_restarts_total"),
                "consumer_stalls": g("panic_manager_consumer_stalls_total"),
                "rounds_cut_off": g("panic_monitor_rounds_cut_off_total"),
                "build_failures": g("panic_monitor_build_failures_total"),
                "pings": g("panic_pings_total"),
                "config_errors": g("panic_config_errors_total"),
            },
            "deliveries": {
                "publishes_ok_at_last_scrape": final_row["publishes_ok"],
                "messages_received": msgs,
                "distinct_rounds_received": distinct,
                "duplicates": msgs - distinct,
                "published_minus_distinct": None if final_row["publishes_ok"] is None
                else final_row["publishes_ok"] - distinct,
                "results": consumer.results, "errors": consumer.errors,
                "unparsed": consumer.unparsed,
                "systems_seen": len(per), "systems_never_seen": missing_systems,
                "per_system_distinct_rounds_min": min(per) if per else None,
                "per_system_distinct_rounds_max": max(per) if per else None,
                "consumer_connects": consumer.connects,
            },
            "rss_kib": {"monitors-manager": stat("rss_manager_kib"),
                        "monitorables-store": stat("rss_store_kib"),
                        "health-checker": stat("rss_health_kib")},
            "cpu_seconds_final": {"monitors-manager": final_row["cpu_manager_s"],
                                  "monitorables-store": final_row["cpu_store_s"],
                                  "health-checker": final_row["cpu_health_s"]},
            "c1_age_s_max": max((s["c1_age_s"] for s in samples if s["c1_age_s"] is not None), default=None),
            "crashes": crashed,
            "exits": exits,
        }
        with open(os.path.join(run_dir, "results.json"), "w") as f:
            json.dump(results, f, indent=1)
        with open(os.path.join(run_dir, "summary.md"), "w") as f:
            f.write(summary_md(results))
        sf.close()
        if args.out_dir:
            os.makedirs(args.out_dir, exist_ok=True)
            for fn in ("results.json", "summary.md", "samples.csv"):
                shutil.copy(os.path.join(run_dir, fn), os.path.join(args.out_dir, fn))
        log("done; results in " + run_dir)
    except KeyboardInterrupt:
        log("interrupted")
        cleanup_procs()
        sys.exit(130)
    finally:
        cleanup_procs()


def build_info(bin_dir):
    try:
        with open(os.path.join(bin_dir, "BUILD_INFO")) as f:
            return f.read().strip()
    except OSError:
        return None


def _ints(v):
    if isinstance(v, float) and v.is_integer():
        return int(v)
    if isinstance(v, dict):
        return {k: _ints(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_ints(x) for x in v]
    return v


def summary_md(r):
    r = _ints(r)
    c, d, fc = r["config"], r["deliveries"], r["final_counters"]
    L = [f"# Soak: {c['monitors']} monitors, {c['minutes']:g} min, outage every {c['outage_every_s']:g} s",
         "", f"Started {c['started']}; system-monitor period {c['period_s']} s; "
         f"{c['host_cores']} cores; health-checker ping interval {c['health_checker_ping_interval']}.", "",
         "## RSS (KiB)", "", "| binary | start | after 10 min | min | peak | end |", "|---|---|---|---|---|---|"]
    for b, s in r["rss_kib"].items():
        L.append(f"| {b} | {s.get('start')} | {s.get('after_10min')} | {s.get('min')} | {s.get('peak')} | {s.get('final')} |")
    L += ["", "## Counters", "", "| figure | value |", "|---|---|"]
    for k, v in [("monitors running at end", fc["monitors_running"]),
                 ("rounds (ok / error / timed out)",
                  f"{fc['rounds_total']} ({fc['rounds_ok']} / {fc['rounds_error']} / {fc['rounds_timed_out']})"),
                 ("raw-data publishes ok / failed / unroutable",
                  f"{fc['publishes_ok']} / {fc['publishes_failed']} / {fc['publishes_unroutable']}"),
                 ("messages received by the test consumer", d["messages_received"]),
                 ("distinct rounds received", d["distinct_rounds_received"]),
                 ("duplicates (received − distinct)", d["duplicates"]),
                 ("publishes ok − distinct received", d["published_minus_distinct"]),
                 ("systems never seen / per-system rounds min–max",
                  f"{d['systems_never_seen']} / {d['per_system_distinct_rounds_min']}–{d['per_system_distinct_rounds_max']}"),
                 ("monitor deaths", fc["deaths"]),
                 ("outbox drops (manager / bus)", f"{fc['outbox_dropped']} / {fc['bus_outbox_dropped']}"),
                 ("bus reconnections", fc["bus_reconnections"]),
                 ("max age of c1_Monitors Manager timestamp (s)", r["c1_age_s_max"]),
                 ("CPU seconds (manager / store / health checker)",
                  " / ".join(str(v) for v in r["cpu_seconds_final"].values())),
                 ("crashes", r["crashes"] or "none")]:
        L.append(f"| {k} | {v} |")
    L += ["", "## Outages (resume = seconds after permissions were restored)", "",
          "| # | start (s) | connections closed (s) | cut off (s) | peak outbox msgs / MB | consumer gets a message | c1_ timestamp moves | panic_bus_connected = 1 |",
          "|---|---|---|---|---|---|---|---|"]
    for o in r["outages"]:
        rs = o.get("resume", {})
        cut_off = o.get("cut_off_s") or round(o["end_s"] - o["cut_s"], 2)
        mb = round(o.get("peak_outbox_bytes", 0) / 1e6, 1)
        L.append(f"| {o['index']} | {o.get('start_s')} | {o.get('cut_s')} | {cut_off} | {o.get('peak_outbox_messages')} / {mb} | "
                 f"{rs.get('consumer_message_s')} | {rs.get('c1_timestamp_changed_s')} | {rs.get('bus_connected_s')} |")
    L += ["", "## Exit on SIGTERM", "", "| binary | exit code | seconds |", "|---|---|---|"]
    for b, e in r["exits"].items():
        L.append(f"| {b} | {e['exit_code']} | {e['exit_s']} |")
    return "\n".join(L) + "\n"


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--summarize":  # results.json -> summary.md on stdout
        with open(sys.argv[2]) as f:
            sys.stdout.write(summary_md(json.load(f)))
    else:
        main()
