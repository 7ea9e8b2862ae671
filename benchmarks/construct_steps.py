"""Target rate of a finished D̂_rand / D̂_det build at more PGD steps, without rebuilding it (issue 12, item 2).

Run (2 cores; the construct run folders of `cifar-resnet18`, found with `--dry-run` or in the store)::

    ADVFEAT_DATA=../shared/data PYTHONPATH=. .venv/bin/python benchmarks/construct_steps.py \\
        --run STORE/runs/HASH_RAND --run STORE/runs/HASH_DET --steps 30 50 100 --threads 2 --out runs/bench-steps

Why only the failures are attacked again: the construction's PGD has no random start and returns its
best iterate by (target hit, loss) — `deep.attacks.pgd._Best`. A run of K' > K steps repeats the K-step
run's iterates 1..K exactly, so every image hit within K steps is hit within K' steps, and the full-set
target rate at K' is (hits at K + hits at K' among the K-step failures) / n. Only the failures need
re-attacking, on their original images and targets. The script first replays K steps on them: 0 hits
confirms that the re-attack reproduces the build (the same model, data and arithmetic up to batch
composition).

Output: OUT/construct_steps.json and OUT/construct_steps.md (a table: steps, hits among the failures,
full-set target rate, seconds, and the projected time of a full build at that many steps from the measured
seconds per image-step), with the CPU model, threads and load average before and after.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from deep.construct.adversarial import perturb_batch
from deep.construct.shards import read_provenance
from deep.construct.source import load_source
from deep.data import load_split
from deep.data.constructed import read_shard
from deep.precision import cpu_model


def failures(run: Path) -> tuple[dict, np.ndarray, np.ndarray, int]:
    """(provenance, source indices of the images whose target was missed, their targets, hits) of a build."""
    prov = read_provenance(run / "dataset")
    if prov["kind"] not in ("rand", "det"):
        raise ValueError(f"{run}: a {prov['kind']!r} build; target rates exist for 'rand' and 'det' builds only")
    shards = [read_shard(run / "dataset" / name) for name in prov["shards"]]
    hit = np.concatenate([s["target_hit"] for s in shards])
    index = np.concatenate([s["src_index"] for s in shards])
    target = np.concatenate([s["y"] for s in shards])
    return prov, index[~hit], target[~hit], int(hit.sum())


def attack_hits(model: torch.nn.Module, x: torch.Tensor, t: torch.Tensor, params: dict, steps: int) -> int:
    """Images of x whose target t is hit by the build's own attack with `steps` steps."""
    hits = 0
    for b in range(0, len(x), params["batch_size"]):
        sl = slice(b, b + params["batch_size"])
        _, stats = perturb_batch(model, x[sl], t[sl], eps=params["eps"], step=params["step"], steps=steps)
        hits += int(stats["target_hit"].sum())
    return hits


def measure(run: Path, steps: list[int], data_root: str | None) -> dict:
    prov, index, target, hits = failures(run)
    params, n = prov["params"], prov["n"]
    source = prov["source_model"]  # a run folder's record or a named model's (deep.construct.source)
    loaded = load_source(source.get("run"), source.get("name"), "cpu")
    for key in ("weights_sha256", "checkpoint_sha256"):
        if source.get(key) != loaded.record.get(key):
            raise ValueError(f"{run}: the source model changed since the build ({key} {loaded.record.get(key)})")
    split = load_split(prov["source_dataset"], prov["source_split"], first_n=prov.get("source_first_n"),
                       data_root=data_root)
    x, t = split.x[torch.from_numpy(index)], torch.from_numpy(target)
    rows = []
    for k in [params["steps"], *(k for k in steps if k > params["steps"])]:
        start = time.perf_counter()
        got = attack_hits(loaded.model, x, t, params, k) if len(x) else 0
        seconds = time.perf_counter() - start
        per_step = seconds / max(len(x) * k, 1)
        rows.append({"steps": k, "failures_hit": got, "failures": len(x), "target_rate": (hits + got) / n,
                     "seconds": round(seconds, 1), "s_per_image_step": per_step,
                     "full_build_minutes": round(n * k * per_step / 60, 1)})
        print(f"{prov['kind']} k={k}: {got}/{len(x)} failures hit, full-set rate {(hits + got) / n:.4f}, "
              f"{seconds:.0f} s", flush=True)
    return {"run": str(run), "kind": prov["kind"], "n": n, "built_steps": params["steps"], "built_hits": hits,
            "eps": params["eps"], "step": params["step"], "rows": rows}


def markdown(out: dict) -> str:
    lines = [f"CPU: {out['cpu']}; threads {out['threads']}; load average {out['load_before']} -> {out['load_after']}",
             "", "| kind | steps | failures hit | full-set target rate | seconds | s / image-step | full build (min) |",
             "|---|---|---|---|---|---|---|"]
    for m in out["builds"]:
        for r in m["rows"]:
            lines.append(f"| {m['kind']} | {r['steps']} | {r['failures_hit']}/{r['failures']} | "
                         f"{100 * r['target_rate']:.2f}% | {r['seconds']} | {r['s_per_image_step']:.4f} | "
                         f"{r['full_build_minutes']} |")
    return "\n".join(lines) + "\n"


def _positive(text: str) -> int:
    value = int(text) if text.strip().isdigit() else 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"a number of PGD steps must be a whole number >= 1, got {text!r}")
    return value


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", type=Path, action="append", required=True, help="a finished rand/det construct run folder")
    p.add_argument("--steps", type=_positive, nargs="+", default=[30, 50, 100],
                   help="step counts to measure (those not above the build's own are skipped)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--data-root", default=os.environ.get("ADVFEAT_DATA"))
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    load_before = [round(v, 2) for v in os.getloadavg()]
    builds = [measure(run, args.steps, args.data_root) for run in args.run]
    out = {"cpu": cpu_model(), "threads": args.threads, "load_before": load_before,
           "load_after": [round(v, 2) for v in os.getloadavg()], "torch": torch.__version__, "builds": builds}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "construct_steps.json").write_text(json.dumps(out, indent=2) + "\n")
    (args.out / "construct_steps.md").write_text(markdown(out))
    print(markdown(out))
    return out


if __name__ == "__main__":
    main()
