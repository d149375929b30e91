#!/usr/bin/env python3
"""Search quality and pruning savings of `tune.classifier` (the closing figures of the tuning
issue), on the synthetic fusion data of examples/tune.yaml with a fixed budget:

  A. TPE + ASHA,            N trials
  B. random, no pruning,   2N trials
  C. TPE, no pruning,       N trials

for several workflow seeds. Prints, per seed and condition, the best validation AUC, the
epochs trained and the wall time, then the claims: A's best >= B's (with half the trials),
and A's epochs <= half of C's at an equal best (within 0.01).

    cargo build --release -p medfusion-cli
    python3 benches/benches/tune_study.py [--seeds 1 2 3] [--trials 16]
"""

import argparse
import csv
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(__import__("os").environ.get("MEDFUSION", ROOT / "target" / "release" / "medfusion"))

CONDITIONS = {
    "A tpe+asha": ("tpe", "asha", 1),
    "B random x2": ("random", "none", 2),
    "C tpe": ("tpe", "none", 1),
}


def study(seed, sampler, pruner, trials, out):
    wf = (ROOT / "examples" / "tune.yaml").read_text().replace("seed: 7", f"seed: {seed}")
    (out / "tune.yaml").write_text(wf)
    sets = {
        "tune.sampler": sampler,
        "tune.pruner": pruner,
        "tune.trials": trials,
        "tune.num_workers": 1,
    }
    args = [str(BIN), "run", "tune.yaml", "--out", "out", "--no-checkpoints"]
    for k, v in sets.items():
        args += ["--set", f"{k}={v}"]
    started = time.monotonic()
    subprocess.run(args, cwd=out, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seconds = time.monotonic() - started
    rows = list(csv.DictReader((out / "out" / "tune" / "trials.csv").open()))
    best = max(float(r["value"]) for r in rows if r["state"] == "complete")
    epochs = sum(int(r["epochs"]) for r in rows)
    return best, epochs, seconds


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--trials", type=int, default=16)
    a = p.parse_args()
    results = {}
    print(f"{'seed':>4}  {'condition':<12} {'trials':>6} {'best val AUC':>12} {'epochs':>6} {'seconds':>8}")
    for seed in a.seeds:
        for name, (sampler, pruner, mult) in CONDITIONS.items():
            with tempfile.TemporaryDirectory() as d:
                best, epochs, secs = study(seed, sampler, pruner, a.trials * mult, Path(d))
            results[(seed, name)] = (best, epochs, secs)
            print(f"{seed:>4}  {name:<12} {a.trials * mult:>6} {best:>12.4f} {epochs:>6} {secs:>8.1f}", flush=True)
    print()
    for name in CONDITIONS:
        bests = [results[(s, name)][0] for s in a.seeds]
        epochs = [results[(s, name)][1] for s in a.seeds]
        spread = statistics.stdev(bests) if len(bests) > 1 else 0.0
        print(f"{name:<12} best AUC mean {statistics.mean(bests):.4f} (min {min(bests):.4f}, max {max(bests):.4f}, sd {spread:.4f}); epochs mean {statistics.mean(epochs):.1f}")
    ok = True
    for s in a.seeds:
        a_best, a_epochs, _ = results[(s, "A tpe+asha")]
        b_best, _, _ = results[(s, "B random x2")]
        c_best, c_epochs, _ = results[(s, "C tpe")]
        quality = a_best >= b_best
        saving = a_epochs <= c_epochs / 2 and a_best >= c_best - 0.01
        ok &= quality and saving
        print(f"seed {s}: TPE+ASHA >= random x2: {quality} ({a_best:.4f} vs {b_best:.4f}); "
              f"epochs {a_epochs} vs {c_epochs} without pruning ({a_epochs / c_epochs:.0%}), best {a_best:.4f} vs {c_best:.4f}: {saving}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
