#!/usr/bin/env python3
"""Issue 16's bar, end to end: `medfusion run` of 10,000 `util.noop` nodes (the layered
workload of WORKLOADS.md section 1) without and with `--dashboard` and 20 clients reading
its event stream, alternated, each run's own duration ("run succeeded in X s", from the
engine's start to its end) taken from its output. Prints the medians and their ratio as one
JSON line.

    MEDFUSION=target/release/medfusion python3 benches/benches/dashboard_overhead.py [RUNS]
"""

import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading

CLIENTS = 20
HERE = os.path.dirname(os.path.abspath(__file__))


def workflow(path):
    data = os.environ.get("MEDFUSION_BENCH_DATA", os.path.join(HERE, "..", "data"))
    with open(os.path.join(data, "dags", "layered-10000.json")) as f:
        dag = json.load(f)
    lines = ["name: noop10k", "nodes:"]
    lines += [f"  - {{ id: n{n}, type: util.noop }}" for n in dag["nodes"]]
    lines += ["edges:"]
    lines += [f"  - {{ from: n{a}.out, to: n{b}.in }}" for a, b in dag["edges"]]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def client(addr, received):
    """Reads the event stream until it ends."""
    host, port = addr.split(":")
    with socket.create_connection((host, int(port))) as s:
        s.sendall(f"GET /api/events HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n".encode())
        total = 0
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            total += len(chunk)
        received.append(total)


def run(binary, flow, out, dashboard):
    args = [binary, "run", flow, "--no-checkpoints", "--out", out]
    if dashboard:
        args += ["--dashboard", "127.0.0.1:0"]
    proc = subprocess.Popen(args, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    threads, received, duration = [], [], None
    for line in proc.stderr:
        m = re.search(r"dashboard: http://([0-9.]+:[0-9]+)/", line)
        if m:
            for _ in range(CLIENTS):
                t = threading.Thread(target=client, args=(m.group(1), received))
                t.start()
                threads.append(t)
        m = re.search(r"run succeeded in ([0-9.]+)s", line)
        if m:
            duration = float(m.group(1))
    proc.wait()
    for t in threads:
        t.join()
    if proc.returncode != 0 or duration is None:
        sys.exit(f"the run failed ({proc.returncode})")
    return duration, sum(received)


def main():
    binary = os.environ.get("MEDFUSION", "target/release/medfusion")
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    with tempfile.TemporaryDirectory() as tmp:
        flow = os.path.join(tmp, "noop10k.yaml")
        workflow(flow)
        plain, served, sent = [], [], []
        for i in range(runs):
            plain.append(run(binary, flow, os.path.join(tmp, f"a{i}"), False)[0])
            d, b = run(binary, flow, os.path.join(tmp, f"b{i}"), True)
            served.append(d)
            sent.append(b)
    a, b = statistics.median(plain), statistics.median(served)
    print(json.dumps({
        "workload": "layered-10000 util.noop",
        "runs": runs,
        "clients": CLIENTS,
        "without_dashboard_s": a,
        "with_dashboard_s": b,
        "ratio": round(b / a, 3),
        "bytes_per_client_median": statistics.median(sent) / CLIENTS,
        "all_without": plain,
        "all_with": served,
    }))


if __name__ == "__main__":
    main()
