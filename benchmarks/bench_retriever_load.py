"""The retriever server under load: single-query requests from 16 clients on loopback, batched against not.

A ``hiexp serve-retriever`` app (BM25 over the shipped HotpotQA corpus, default ``ServerLimits``) runs in its
own process; wrk (Debian's ``wrk``) drives it with 16 connections, each request one demo question with
``topk`` 3, for ``--seconds`` per phase. Phases, in one run:

1. baseline: no merging of concurrent requests (``max_batch_queries=1``), uvicorn's pure-Python asyncio loop
   and h11 parser;
2. hiexp's defaults: concurrent requests scored together, uvloop and httptools;
3. the same while a client sends oversized requests (5 MB bodies, 100,000 queries, ``topk`` 1000) in a loop:
   they must all get 4xx and the normal requests keep their 200s.

Prints requests/s, p50/p99 latency and errors for each; the headline last. Run:
``python benchmarks/bench_retriever_load.py`` (about 40 s; needs ``wrk`` and the ``serve`` extra). The server
and wrk share the machine's cores, so on 2 cores the client takes part of what the server could use.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def serve(port: int, mode: str) -> None:
    """The server process: ``mode`` is ``baseline`` or ``batched``."""
    import uvicorn

    from hiexp.components import make_retriever
    from hiexp.data import DEMO_DATASET
    from hiexp.search.server import ServerLimits, create_app

    limits = ServerLimits(max_batch_queries=1) if mode == "baseline" else ServerLimits()
    app = create_app(make_retriever(dataset=DEMO_DATASET), limits=limits)
    options = {"loop": "asyncio", "http": "h11"} if mode == "baseline" else {"loop": "auto", "http": "auto"}
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="error", **options)


def wait_ready(port: int, seconds: float = 120.0) -> None:
    import httpx

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"the server on port {port} did not come up")


def lua_script(questions: list[str]) -> str:
    bodies = ",\n".join(json.dumps(json.dumps({"queries": [q], "topk": 3})) for q in questions)
    return ("local bodies = {\n" + bodies + "\n}\nlocal i = 0\n"
            "request = function()\n  i = i + 1\n"
            '  return wrk.format("POST", "/retrieve", {["Content-Type"] = "application/json"}, '
            "bodies[(i % #bodies) + 1])\nend\n")


def parse_ms(value: str) -> float:
    number, unit = re.match(r"([\d.]+)(us|ms|s)", value).groups()
    return float(number) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]


def run_wrk(port: int, script: Path, seconds: int, connections: int) -> dict:
    out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script),
                          f"http://127.0.0.1:{port}/retrieve"], capture_output=True, text=True, check=True).stdout
    result = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))}
    for pct in ("50", "99"):
        result[f"p{pct}_ms"] = parse_ms(re.search(rf"\s{pct}%\s+(\S+)", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    result["errors"] = (int(non2xx.group(1)) if non2xx else 0) + (sum(map(int, sockets.groups())) if sockets else 0)
    return result


def abuse(port: int, stop: threading.Event, statuses: dict) -> None:
    import httpx

    bodies = [b'{"queries": ["' + b"x" * (5 << 20) + b'"]}',
              ('{"queries": [' + ",".join(['"q"'] * 100_000) + "]}").encode(),
              b'{"queries": ["a"], "topk": 1000}']
    with httpx.Client(timeout=30) as client:
        i = 0
        while not stop.is_set():
            response = client.post(f"http://127.0.0.1:{port}/retrieve", content=bodies[i % len(bodies)],
                                   headers={"content-type": "application/json"})
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            i += 1
            time.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--serve", nargs=2, metavar=("PORT", "MODE"), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=8771)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    if args.serve:
        serve(int(args.serve[0]), args.serve[1])
        return
    if shutil.which("wrk") is None:
        raise SystemExit("needs wrk (apt-get install wrk)")
    from hiexp.data import DEMO_DATASET, load_dataset

    script = Path(tempfile.mkdtemp()) / "retrieve.lua"
    script.write_text(lua_script([e.question for e in load_dataset(DEMO_DATASET)][:200]))
    results = {}
    for phase, mode in (("baseline", "baseline"), ("batched", "batched"), ("batched, under abuse", "batched")):
        server = subprocess.Popen([sys.executable, __file__, "--serve", str(args.port), mode])
        try:
            wait_ready(args.port)
            run_wrk(args.port, script, 2, args.connections)  # warm-up
            stop, statuses = threading.Event(), {}
            attacker = threading.Thread(target=abuse, args=(args.port, stop, statuses)) if "abuse" in phase else None
            if attacker:
                attacker.start()
            results[phase] = run_wrk(args.port, script, args.seconds, args.connections)
            if attacker:
                stop.set()
                attacker.join()
                results[phase]["abusive_statuses"] = dict(sorted(statuses.items()))
        finally:
            server.terminate()
            server.wait(timeout=30)
        r = results[phase]
        print(f"{phase:22s} {r['rps']:8.0f} req/s  p50 {r['p50_ms']:6.2f} ms  p99 {r['p99_ms']:7.2f} ms  "
              f"errors {r['errors']}" + (f"  oversized: {r['abusive_statuses']}" if "abusive_statuses" in r else ""),
              flush=True)
    abused = results["batched, under abuse"]["abusive_statuses"]
    assert abused and all(400 <= status < 500 for status in abused), abused
    print(f"speed-up over the baseline: {results['batched']['rps'] / results['baseline']['rps']:.2f}x")
    print(f"p99_ms_16_clients: {results['batched']['p99_ms']:.1f}")
    print(f"retrieve_requests_per_s_16_clients: {results['batched']['rps']:.0f}")


if __name__ == "__main__":
    main()
