"""Load test of `nnctl serve` on the digits MLP, and the same requests answered by onnxruntime directly.

    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_serve.py [--seconds 20] [--clients 1 8 32] [--run RUN_DIR]

Trains configs/digits.yaml (unless --run), starts `nnctl serve` on 127.0.0.1 (a free port; loopback only),
and for each number of concurrent clients runs an asyncio httpx client loop for --seconds: every client
posts one sample at a time (`{"inputs": [[64 pixels]]}`) and waits for the answer. Reports requests/s,
p50 and p99 latency, errors, and the server's RSS before and after. Then the same single-sample requests
answered in-process by onnxruntime (the exported model) and by nnctl's predict path, one after another,
so the HTTP server's overhead is a number. Every loop is bounded by time and by --max-requests.
Needs the serve and onnx extras (httpx from dev).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def summarize(latencies: list[float], seconds: float, errors: int) -> dict:
    lat = np.asarray(latencies) * 1000
    return {
        "requests": len(lat),
        "rps": len(lat) / seconds,
        "p50_ms": float(np.percentile(lat, 50)) if len(lat) else float("nan"),
        "p99_ms": float(np.percentile(lat, 99)) if len(lat) else float("nan"),
        "errors": errors,
    }


async def load(url: str, bodies: list[dict], clients: int, seconds: float, max_requests: int) -> dict:
    import httpx

    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:

        async def worker(k: int) -> None:
            nonlocal errors
            i = k
            while time.perf_counter() < deadline and len(latencies) + errors < max_requests:
                started = time.perf_counter()
                try:
                    response = await client.post("/predict", json=bodies[i % len(bodies)])
                    ok = response.status_code == 200
                except httpx.HTTPError:
                    ok = False
                if ok:
                    latencies.append(time.perf_counter() - started)
                else:
                    errors += 1
                i += clients

        started = time.perf_counter()
        await asyncio.gather(*(worker(k) for k in range(clients)))
        elapsed = time.perf_counter() - started
    return summarize(latencies, elapsed, errors)


def in_process(fn, samples: np.ndarray, seconds: float, max_requests: int) -> dict:
    latencies = []
    deadline = time.perf_counter() + seconds
    started = time.perf_counter()
    i = 0
    while time.perf_counter() < deadline and i < max_requests:
        t = time.perf_counter()
        fn(samples[i % len(samples)][None])
        latencies.append(time.perf_counter() - t)
        i += 1
    return summarize(latencies, time.perf_counter() - started, 0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--run", type=Path, default=None, help="a trained run (default: train configs/digits.yaml)")
    parser.add_argument("--max-requests", type=int, default=2_000_000)
    args = parser.parse_args()

    import nnctl
    from nnctl.export.onnx_model import export_run
    from nnctl.export.verify import ort_session

    run_dir = args.run
    if run_dir is None:
        from nnctl.session import run_training

        run_dir = run_training(ROOT / "configs" / "digits.yaml", [], tempfile.mkdtemp(prefix="nnctl-serve-")).run_dir
    run = nnctl.load_run(run_dir)
    x, _ = run.data("test")
    bodies = [{"inputs": [row.tolist()]} for row in x]

    port = free_port()
    env = {**os.environ, "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS", "1")}
    cmd = [sys.executable, "-m", "nnctl.cli", "serve", str(run_dir), "--port", str(port)]
    server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    url = f"http://127.0.0.1:{port}"
    rows = []
    try:
        import httpx

        for _ in range(300):  # bounded start-up wait
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        else:
            raise SystemExit("server did not start")
        asyncio.run(load(url, bodies, 1, 1.0, 1000))  # warm-up
        for clients in args.clients:
            before = rss_mib(server.pid)
            result = asyncio.run(load(url, bodies, clients, args.seconds, args.max_requests))
            result.update(clients=clients, rss_before=before, rss_after=rss_mib(server.pid))
            rows.append(result)
            print(f"{clients} clients: {result}", file=sys.stderr)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)

    export = export_run(run_dir, Path(tempfile.mkdtemp()) / "digits.onnx")
    session = ort_session(export.path)
    x32 = x.astype(np.float32)
    p = run.predictor

    def ort_predict(sample):
        return session.run(None, {"input": sample})

    def nnctl_predict(sample):
        out = p.outputs(sample)
        return p.labels(out), p.probabilities(out)

    direct = {
        "onnxruntime in-process": in_process(ort_predict, x32, args.seconds, args.max_requests),
        "nnctl predict path in-process": in_process(nnctl_predict, x, args.seconds, args.max_requests),
    }
    threads = env["OPENBLAS_NUM_THREADS"]
    print(
        f"\nnnctl serve, digits MLP ({run_dir}), {args.seconds:g} s per level, OPENBLAS_NUM_THREADS={threads}, "
        f"{os.cpu_count()} CPUs (client and server share them)\n"
    )
    print("| clients | requests | requests/s | p50 ms | p99 ms | errors | server RSS before -> after (MiB) |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['clients']} | {r['requests']} | {r['rps']:.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
            f"{r['errors']} | {r['rss_before']:.1f} -> {r['rss_after']:.1f} |"
        )
    print("\nThe same single-sample requests without HTTP, one after another:\n")
    print("| answered by | requests | requests/s | p50 ms | p99 ms |")
    print("|---|---|---|---|---|")
    for name, r in direct.items():
        print(f"| {name} | {r['requests']} | {r['rps']:.0f} | {r['p50_ms']:.3f} | {r['p99_ms']:.3f} |")
    return 1 if any(r["errors"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
