"""Reference figures for the checkpoint_io bench (WORKLOADS.md section 3), on the same disk.

Python safetensors save + fsync, load warm and cold (posix_fadvise DONTNEED after fsync), and
`dd if=/dev/zero bs=1M count=1024 conv=fsync` bandwidth. Medians of several runs.

    pip install safetensors numpy
    python3 benches/benches/checkpoint_io_reference.py [DIR]   # DIR: the disk to measure
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
from safetensors.numpy import load_file, save_file

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.environ.get("MEDFUSION_BENCH_DATA", os.path.join(HERE, "..", "data"))


def tensors():
    specs = json.load(open(os.path.join(DATA, "resnet50-tensors.json")))
    rng = np.random.default_rng(0)
    out = {}
    for s in specs:
        if s["dtype"] == "float32":
            out[s["name"]] = rng.random(s["shape"], dtype=np.float32) - 0.5
        else:
            out[s["name"]] = np.arange(int(np.prod(s["shape"])), dtype=np.int64).reshape(s["shape"])
    return out


def median_ms(f, runs, setup=lambda: None):
    times = []
    for _ in range(runs):
        setup()
        t = time.perf_counter()
        f()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else None
    data = tensors()
    nbytes = sum(a.nbytes for a in data.values())
    with tempfile.TemporaryDirectory(dir=root) as d:
        path = os.path.join(d, "model.safetensors")

        def save():
            save_file(data, path)
            fd = os.open(path, os.O_RDONLY)
            os.fsync(fd)
            os.close(fd)
            dfd = os.open(d, os.O_RDONLY)
            os.fsync(dfd)
            os.close(dfd)

        def remove():
            if os.path.exists(path):
                os.remove(path)

        def evict():
            fd = os.open(path, os.O_RDONLY)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            os.close(fd)

        save_ms = median_ms(save, 15, remove)
        warm_ms = median_ms(lambda: load_file(path), 15)
        cold_ms = median_ms(lambda: load_file(path), 15, evict)

        dd_path = os.path.join(d, "dd.bin")
        dd = []
        for _ in range(3):
            t = time.perf_counter()
            subprocess.run(["dd", "if=/dev/zero", f"of={dd_path}", "bs=1M", "count=1024", "conv=fsync"],
                           check=True, capture_output=True)
            dd.append((1 << 30) / (time.perf_counter() - t) / 1e6)
            os.remove(dd_path)
    print(f"python safetensors save+fsync: {save_ms:.1f} ms ({nbytes / save_ms / 1e3:.0f} MB/s)")
    print(f"python safetensors load warm:  {warm_ms:.1f} ms")
    print(f"python safetensors load cold:  {cold_ms:.1f} ms")
    print(f"dd bs=1M count=1024 conv=fsync: {statistics.median(dd):.0f} MB/s (runs: {', '.join(f'{x:.0f}' for x in dd)})")


if __name__ == "__main__":
    main()
