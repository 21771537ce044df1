"""Out-of-core benchmark: training on a memory-mapped data set bigger than we want in memory, and
`nnctl convert` of a large CSV, with peak resident memory (RSS) measured per process.

1. Writes an .npy of N x 784 float32 features (default ~2.1 GB) and its labels (bench_mlp.py's
   teacher), then trains the 784-256-128-10 MLP (Adam, batch 512, no validation) for one epoch on
   it twice, each in a fresh process: `source: {type: npy, mmap: true}` (read batch by batch) and
   `mmap: false` (the same data read into memory). Reports the epoch time (the trainer's
   metrics.csv seconds) and the process's peak RSS (VmHWM; it counts mapped file pages while they are
   resident, which is why the mapped source reads scattered rows with pread and hands mapped pages
   back every 64 MB).
2. Writes a CSV of about --csv-gb GB (784 features + label) and runs `nnctl convert` on it in a
   fresh process: seconds and peak RSS.

    python benchmarks/bench_outofcore.py [--gb 2.1] [--csv-gb 1.05] [--dir /tmp/x] [--skip-csv]

Targets (issue 16): mapped training peak RSS < 25 % of the data size, epoch time <= 1.3x the
in-memory epoch; convert of a >= 1 GB CSV with peak RSS < 300 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FEATURES = 784


# Peak RSS of the measuring process itself: VmHWM of its address space. (getrusage's ru_maxrss is no
# good here: Linux carries it over fork and exec, so a child would report this script's own peak.)
HWM = (
    "def hwm_mb():\n"
    "    line = next(x for x in open('/proc/self/status') if x.startswith('VmHWM'))\n"
    "    return int(line.split()[1]) / 1024\n"
)


def write_npy(folder: Path, gb: float) -> tuple[Path, Path, int]:
    import numpy as np

    n = int(gb * 1e9 / (FEATURES * 4))
    x_path, y_path = folder / "x.npy", folder / "y.npy"
    x = np.lib.format.open_memmap(x_path, mode="w+", dtype=np.float32, shape=(n, FEATURES))
    rng = np.random.default_rng(0)
    teacher = rng.standard_normal((FEATURES, 10)).astype(np.float32)
    y = np.empty(n, dtype=np.int64)
    step = 50_000
    for start in range(0, n, step):
        block = rng.random((min(step, n - start), FEATURES), dtype=np.float32)
        x[start : start + len(block)] = block
        y[start : start + len(block)] = np.argmax((block - 0.5) @ teacher, axis=1)
    x.flush()
    del x
    np.save(y_path, y)
    os.sync()  # written back before anything is timed
    return x_path, y_path, n


CONFIG = """\
name: outofcore
seed: 0
data:
  source: {{type: npy, x: {x}, y: {y}, mmap: {mmap}}}
  split: {{train: 1.0, val: 0.0, test: 0.0}}
  normalize: none
model:
  layers:
    - {{type: dense, units: 256, activation: relu, init: he_uniform}}
    - {{type: dense, units: 128, activation: relu, init: he_uniform}}
    - {{type: dense, units: 10, init: he_uniform}}
loss: cross_entropy
optimizer: {{type: adam, lr: 0.001}}
train: {{epochs: 1, batch_size: 512, monitor: train_loss, threads: 1}}
output: {{checkpoint_every: 1000000}}
"""


def train_once(folder: Path, x: Path, y: Path, mmap: bool) -> dict:
    config = folder / f"c-{mmap}.yaml"
    config.write_text(CONFIG.format(x=x, y=y, mmap=str(mmap).lower()))
    code = (
        HWM + "import json, sys, time\n"
        "from nnctl.session import run_training\n"
        "t = time.perf_counter()\n"
        f"r = run_training({str(config)!r}, [], runs_dir={str(folder / 'runs')!r})\n"
        "total = time.perf_counter() - t\n"
        "print(json.dumps({'epoch_s': r.history[0]['seconds'], 'total_s': total, "
        "'peak_rss_mb': hwm_mb(), 'loss': r.final['train_loss']}))\n"
    )
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=ROOT)
    if out.returncode:
        raise SystemExit(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def write_csv(path: Path, gb: float) -> int:
    import numpy as np

    rng = np.random.default_rng(1)
    rows = 0
    with open(path, "w") as fh:
        fh.write(",".join([f"p{j}" for j in range(FEATURES)] + ["label"]) + "\n")
        while fh.tell() < gb * 1e9:
            block = rng.integers(0, 256, (2000, FEATURES))
            labels = rng.integers(0, 10, 2000)
            text = np.column_stack([block, labels])
            np.savetxt(fh, text, fmt="%d", delimiter=",")
            rows += len(block)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gb", type=float, default=2.1, help="size of the .npy features")
    ap.add_argument("--csv-gb", type=float, default=1.05, help="size of the CSV for nnctl convert")
    ap.add_argument("--dir", help="work folder (default: a temporary one, removed afterwards)")
    ap.add_argument("--skip-csv", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-ooc-", dir=args.dir) as tmp:
        folder = Path(tmp)
        t = time.perf_counter()
        x, y, n = write_npy(folder, args.gb)
        size_mb = x.stat().st_size / 2**20
        print(f"wrote {n:,} x {FEATURES} float32 = {size_mb:,.0f} MiB in {time.perf_counter() - t:.0f} s", flush=True)
        print(f"load average {os.getloadavg()}", flush=True)
        mapped = train_once(folder, x, y, mmap=True)
        memory = train_once(folder, x, y, mmap=False)
        for label, r in (("mapped (mmap: true)", mapped), ("in memory (mmap: false)", memory)):
            print(
                f"{label:<24} epoch {r['epoch_s']:7.1f} s   peak RSS {r['peak_rss_mb']:8,.0f} MiB "
                f"({r['peak_rss_mb'] / size_mb:.1%} of the data)   train_loss {r['loss']:.4f}",
                flush=True,
            )
        print(f"mapped / in-memory epoch time: {mapped['epoch_s'] / memory['epoch_s']:.2f}x", flush=True)
        print(f"load average {os.getloadavg()}", flush=True)
        x.unlink()
        if not args.skip_csv:
            csv = folder / "big.csv"
            t = time.perf_counter()
            rows = write_csv(csv, args.csv_gb)
            print(
                f"wrote {csv.stat().st_size / 2**20:,.0f} MiB CSV ({rows:,} rows) in {time.perf_counter() - t:.0f} s",
                flush=True,
            )
            t = time.perf_counter()
            args = ["convert", str(csv), "-o", str(folder / "shards"), "--target", "label"]
            code = HWM + (
                "from nnctl.cli import app\n"
                f"try:\n    app({args!r})\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
                "print('RSS', hwm_mb())\n"
            )
            out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
            if out.returncode:
                raise SystemExit(out.stderr)
            rss = float(out.stdout.strip().splitlines()[-1].split()[1])
            print(out.stdout.strip().splitlines()[0])
            print(f"nnctl convert: {time.perf_counter() - t:.0f} s, peak RSS {rss:,.0f} MiB", flush=True)
            print(f"load average {os.getloadavg()}", flush=True)


if __name__ == "__main__":
    main()
