"""The bad-input table of the command lines (issue 13 item 5), and the worker that runs it.

Each case is ``(entry point, argv, expected exit status, substring of stderr)``. ``argv`` is split with
shlex after filling the placeholders of :func:`make_files` (``{out}`` is a fresh, not yet existing
folder per case). A case passes when the exit status matches, stderr holds the substring, and stderr
is one line (plus any deprecation notes) without a traceback: the project's error convention
(deep/cli/errors.py).

Run as a script (``python tests/bad_input_cases.py < cases.json``), this module is the worker process
of tests/test_bad_inputs.py: it runs the given cases in-process through the same ``run_cli`` wrapper
as the ``python -m`` entry points and prints one JSON result per case.
"""
from __future__ import annotations

import contextlib
import io
import json
import shlex
import shutil
import sys
from pathlib import Path

import numpy as np
import torch

DEEP, RAY, FIG, THEORY = "deep", "ray_jobs", "figures", "theory"

_TRAIN = "train --dataset {tiny} --model logreg --epochs 1 --eval-n 8 --eval-steps 1 --no-progress --out {out}"
_EVAL = "eval --checkpoint {run} --eps 0.1 --attacks fgsm --no-progress --out {out}"
_ATTACK = "attack --checkpoint {run} --eps 0.1 --attacks fgsm --no-progress --out {out}"
_CONSTRUCT = ("construct --construct rand --checkpoint {run} --dataset {tiny} --n 8 --steps 1 --no-progress "
              "--out {out}")

CASES: list[tuple[str, str, int, str]] = [
    # ------------------------------------------------------------------ deep train: numeric flags
    (DEEP, f"{_TRAIN} --epochs 0", 2, "recipe.epochs must be an integer >= 1"),
    (DEEP, f"{_TRAIN} --epochs -1", 2, "recipe.epochs"),
    (DEEP, f"{_TRAIN} --epochs abc", 2, "--epochs: invalid int value: 'abc'"),
    (DEEP, f"{_TRAIN} --epochs 1.5", 2, "--epochs: invalid int value: '1.5'"),
    (DEEP, f"{_TRAIN} --batch-size 0", 2, "recipe.batch_size"),
    (DEEP, f"{_TRAIN} --batch-size -5", 2, "recipe.batch_size"),
    (DEEP, f"{_TRAIN} --lr 0", 2, "recipe.lr must be > 0"),
    (DEEP, f"{_TRAIN} --lr -1", 2, "recipe.lr"),
    (DEEP, f"{_TRAIN} --lr nan", 2, "recipe.lr"),
    (DEEP, f"{_TRAIN} --lr inf", 2, "recipe.lr"),
    (DEEP, f"{_TRAIN} --momentum 1", 2, "recipe.momentum must be < 1"),
    (DEEP, f"{_TRAIN} --momentum -0.5", 2, "recipe.momentum"),
    (DEEP, f"{_TRAIN} --weight-decay -1", 2, "recipe.weight_decay"),
    (DEEP, f"{_TRAIN} --gamma nan", 2, "recipe.gamma"),
    (DEEP, f"{_TRAIN} --milestones -1", 2, "recipe.milestones"),
    (DEEP, f"{_TRAIN} --eps -1", 2, "'-1' must be a finite number >= 0"),
    (DEEP, f"{_TRAIN} --eps nan", 2, "'nan' must be a finite number >= 0"),
    (DEEP, f"{_TRAIN} --eps inf", 2, "'inf' must be a finite number >= 0"),
    (DEEP, f"{_TRAIN} --eps 1e30", 2, "[0, 1]"),
    (DEEP, f"{_TRAIN} --eps 8", 2, "8/255"),
    (DEEP, f"{_TRAIN} --eps 8/0", 2, "divides by zero"),
    (DEEP, f"{_TRAIN} --eps abc", 2, "'abc' is not a number"),
    (DEEP, f"{_TRAIN} --method pgd --eps 0", 2, "recipe.eps must be > 0"),
    (DEEP, f"{_TRAIN} --alpha 0", 2, "alpha"),
    (DEEP, f"{_TRAIN} --alpha -1", 2, "'-1' must be a finite number >= 0"),
    (DEEP, f"{_TRAIN} --alpha nan", 2, "'nan' must be a finite number >= 0"),
    (DEEP, f"{_TRAIN} --steps 0", 2, "recipe.steps"),
    (DEEP, f"{_TRAIN} --steps -3", 2, "recipe.steps"),
    (DEEP, f"{_TRAIN} --beta -1", 2, "recipe.beta"),
    (DEEP, f"{_TRAIN} --lam nan", 2, "recipe.lam"),
    (DEEP, f"{_TRAIN} --fgsm-alpha 2", 2, "recipe.fgsm_alpha"),
    (DEEP, f"{_TRAIN} --eps-warmup -1", 2, "recipe.eps_warmup"),
    (DEEP, f"{_TRAIN} --eps-warmup 5", 2, "recipe.eps_warmup"),
    (DEEP, f"{_TRAIN} --subset 0", 2, "recipe.subset"),
    (DEEP, f"{_TRAIN} --n 0", 2, "recipe.first_n"),
    (DEEP, f"{_TRAIN} --n -4", 2, "recipe.first_n"),
    (DEEP, f"{_TRAIN} --subset 5 --n 5", 2, "cannot be combined"),
    (DEEP, f"{_TRAIN} --seed -1", 2, "recipe.seed"),
    (DEEP, f"{_TRAIN} --eval-n 0", 2, "recipe.eval_n"),
    (DEEP, f"{_TRAIN} --eval-every 0", 2, "recipe.eval_every"),
    (DEEP, f"{_TRAIN} --eval-steps -1", 2, "recipe.eval_steps"),
    (DEEP, f"{_TRAIN} --nesterov --momentum 0", 2, "recipe.nesterov needs momentum > 0"),
    # ------------------------------------------------------- deep train: names, choices, files
    (DEEP, f"{_TRAIN} --dataset nope", 2, "'nope'"),
    (DEEP, f"{_TRAIN} --dataset npz:{{missing}}", 2, "{missing}"),
    (DEEP, f"{_TRAIN} --dataset {{corrupt_npz}}", 2, "corrupt.npz"),
    (DEEP, f"{_TRAIN} --dataset {{truncated_npz}}", 2, "truncated.npz"),
    (DEEP, f"{_TRAIN} --dataset dir:{{missing}}", 2, "{missing}"),
    (DEEP, f"{_TRAIN} --model resnet1000", 2, "recipe.model must be one of"),
    (DEEP, f"{_TRAIN} --method magic", 2, "invalid choice: 'magic'"),
    (DEEP, f"{_TRAIN} --norm l3", 2, "'l3'"),
    (DEEP, f"{_TRAIN} --schedule warp", 2, "invalid choice: 'warp'"),
    (DEEP, f"{_TRAIN} --mart-ablation no-kl", 2, "needs method 'mart'"),
    (DEEP, f"{_TRAIN} --perturb correct", 2, "needs method 'pgd'"),
    (DEEP, f"{_TRAIN} --init-from {{missing}}", 2, "recipe.init_from"),
    (DEEP, f"{_TRAIN} --recipe {{missing}}", 2, "--recipe file not found"),
    (DEEP, f"{_TRAIN} --recipe {{dir}}", 2, "is a folder"),
    (DEEP, f"{_TRAIN} --recipe {{bad_json}}", 2, "bad.json' is not valid JSON"),
    (DEEP, f"{_TRAIN} --recipe {{list_json}}", 2, "must hold a JSON object"),
    (DEEP, f"{_TRAIN} --recipe {{unknown_json}}", 2, "unknown recipe fields ['colour']"),
    (DEEP, "train --dataset {tiny} --model logreg --no-progress --out {file}", 2, "is an existing file"),
    (DEEP, "train --dataset {tiny} --model logreg --no-progress --out {file}/sub", 2, "is a file, not a folder"),
    (DEEP, "train --dataset {tiny}", 2, "the following arguments are required: --out"),
    (DEEP, f"{_TRAIN} --device tpu", 2, "invalid choice: 'tpu'"),
    (DEEP, f"{_TRAIN} --bogus-flag 1", 2, "unrecognized arguments: --bogus-flag"),
    (DEEP, "", 2, "the following arguments are required: COMMAND"),
    (DEEP, "fly", 2, "invalid choice: 'fly'"),
    # ---------------------------------------------------------------------------- deep eval
    (DEEP, f"{_EVAL} --eps -1", 2, "'-1' must be a finite number >= 0"),
    (DEEP, f"{_EVAL} --eps nan", 2, "'nan'"),
    (DEEP, f"{_EVAL} --eps inf", 2, "'inf'"),
    (DEEP, f"{_EVAL} --eps 1e30", 2, "[0, 1]"),
    (DEEP, f"{_EVAL} --eps 2", 2, "2/255"),
    (DEEP, f"{_EVAL} --eps 8/0", 2, "divides by zero"),
    (DEEP, f"{_EVAL} --eps abc", 2, "'abc' is not a number"),
    (DEEP, f"{_EVAL} --eps 8/255/3", 2, "8/255/3"),
    (DEEP, f"{_EVAL} --norm l2 --eps 1e9", 2, "out of range for norm 'l2'"),
    (DEEP, f"{_EVAL} --alpha -1", 2, "'-1' must be a finite number >= 0"),
    (DEEP, f"{_EVAL} --alpha nan", 2, "'nan'"),
    (DEEP, f"{_EVAL} --n 0", 2, "--n: expected an integer >= 1, got 0"),
    (DEEP, f"{_EVAL} --n -3", 2, "--n: expected an integer >= 1, got -3"),
    (DEEP, f"{_EVAL} --n abc", 2, "--n: expected an integer >= 1, got 'abc'"),
    (DEEP, f"{_EVAL} --batch-size 0", 2, "--batch-size: expected an integer >= 1, got 0"),
    (DEEP, f"{_EVAL} --batch-size -1", 2, "--batch-size: expected an integer >= 1, got -1"),
    (DEEP, f"{_EVAL} --batch-size 1e3", 2, "--batch-size: expected an integer >= 1, got '1e3'"),
    (DEEP, f"{_EVAL} --seed -1", 2, "--seed: expected an integer >= 0, got -1"),
    (DEEP, f"{_EVAL} --attacks pgd-abc", 2, "pgd-abc"),
    (DEEP, f"{_EVAL} --attacks magic", 2, "'magic'"),
    (DEEP, f"{_EVAL} --attacks pgd-99999999999", 2, "pgd-99999999999"),
    (DEEP, f"{_EVAL} --attacks pgd-10x0", 2, "pgd-10x0"),
    (DEEP, f"{_EVAL} --attacks fgsm fgsm", 2, "fgsm"),
    (DEEP, f"{_EVAL} --attacks PGD-5", 2, "unknown attack name 'PGD-5'; known: "),
    (DEEP, f"{_EVAL} --attacks pgd-0", 0, ""),
    (DEEP, f"{_EVAL} --eps 8/255 --norm Linf", 0, ""),
    (DEEP, f"{_EVAL} --norm l3", 2, "'l3'"),
    (DEEP, f"{_EVAL} --split val", 2, "invalid choice: 'val'"),
    (DEEP, f"{_EVAL} --dataset nope", 2, "'nope'"),
    (DEEP, f"{_EVAL} --device tpu", 2, "invalid choice: 'tpu'"),
    (DEEP, "eval --checkpoint {missing} --eps 0.1 --out {out}", 2, "{missing}"),
    (DEEP, "eval --checkpoint {dir} --eps 0.1 --out {out}", 2, "{dir}"),
    (DEEP, "eval --checkpoint {garbage_run} --eps 0.1 --out {out}", 2, "checkpoint.pt"),
    (DEEP, "eval --checkpoint {file} --eps 0.1 --out {out}", 2, "f.txt"),
    (DEEP, "eval --checkpoint {evil_run} --eps 0.1 --out {out}", 2, "holds Python objects other than tensors"),
    (DEEP, f"{_TRAIN} --recipe {{run}}/recipe.json --epochs 0", 2, "recipe.json' and the flags"),
    (DEEP, "eval --checkpoint {run} --eps 0.1 --out {file}", 2, "is an existing file"),
    (DEEP, "eval --checkpoint {run} --out {out}", 2, "the following arguments are required: --eps"),
    (DEEP, "eval --model nope:fn --dataset {tiny} --eps 0.1 --out {out}", 2, "module 'nope' does not import"),
    (DEEP, "eval --model os:getcwd --dataset {tiny} --eps 0.1 --out {out}", 2, "not a torch.nn.Module"),
    (DEEP, "eval --torchvision resnet999 --dataset {tiny} --eps 0.1 --out {out}", 2, "'resnet999' is unknown"),
    (DEEP, "eval --torchvision resnet18 --dataset {tiny} --normalize abc --eps 0.1 --out {out}", 2, "--normalize 'abc'"),
    (DEEP, "eval --torchvision resnet18 --dataset {tiny} --weights {missing} --eps 0.1 --out {out}", 2, "{missing}"),
    (DEEP, "eval --checkpoint {run} --model os:getcwd --eps 0.1 --out {out}", 2, "give exactly one of --checkpoint"),
    (DEEP, "eval --eps 0.1 --out {out}", 2, "give exactly one of --checkpoint"),
    (DEEP, "eval --model os:getcwd --eps 0.1 --out {out}", 2, "--model needs --dataset"),
    (DEEP, f"{_EVAL} --num-classes 0", 2, "--num-classes: expected an integer >= 1, got 0"),
    (DEEP, f"{_EVAL} --normalize mnist", 2, "go with --model/--torchvision"),
    # --------------------------------------------------------------------------- deep attack
    (DEEP, f"{_ATTACK} --eps -0.5", 2, "'-0.5' must be a finite number >= 0"),
    (DEEP, f"{_ATTACK} --eps 1e30", 2, "[0, 1]"),
    (DEEP, f"{_ATTACK} --eps 3/0", 2, "divides by zero"),
    (DEEP, f"{_ATTACK} --n 0", 2, "--n: expected an integer >= 1, got 0"),
    (DEEP, f"{_ATTACK} --batch-size 0", 2, "--batch-size: expected an integer >= 1, got 0"),
    (DEEP, f"{_ATTACK} --attacks cw-abc", 2, "cw-abc"),
    (DEEP, f"{_ATTACK} --attacks pgd-99999999999", 2, "pgd-99999999999"),
    (DEEP, f"{_ATTACK} --attacks pgd-0", 0, ""),
    (DEEP, f"{_ATTACK} --attack fgsm", 0, "--attack is deprecated"),
    (DEEP, f"{_ATTACK} --split dev", 2, "invalid choice: 'dev'"),
    (DEEP, "attack --checkpoint {missing} --eps 0.1 --out {out}", 2, "{missing}"),
    (DEEP, "attack --checkpoint {garbage_run} --eps 0.1 --out {out}", 2, "checkpoint.pt"),
    (DEEP, "attack --checkpoint {run} --eps 0.1 --out {file}", 2, "is an existing file"),
    # ------------------------------------------------------------------------ deep construct
    (DEEP, f"{_CONSTRUCT} --n 0", 2, "--n: expected an integer >= 1, got 0"),
    (DEEP, f"{_CONSTRUCT} --eps -1", 2, "'-1' must be a finite number >= 0"),
    (DEEP, f"{_CONSTRUCT} --eps nan", 2, "'nan'"),
    (DEEP, f"{_CONSTRUCT} --alpha 1/0", 2, "divides by zero"),
    (DEEP, f"{_CONSTRUCT} --steps 0", 2, "--steps: expected an integer >= 1, got 0"),
    (DEEP, f"{_CONSTRUCT} --batch-size -2", 2, "--batch-size: expected an integer >= 1, got -2"),
    (DEEP, f"{_CONSTRUCT} --shard-size 0", 2, "--shard-size: expected an integer >= 1, got 0"),
    (DEEP, f"{_CONSTRUCT} --seed -7", 2, "--seed: expected an integer >= 0, got -7"),
    (DEEP, f"{_CONSTRUCT} --split val", 2, "invalid choice: 'val'"),
    (DEEP, f"{_CONSTRUCT} --dataset nope", 2, "'nope'"),
    (DEEP, "construct --construct fancy --checkpoint {run} --dataset {tiny} --out {out}", 2,
     "invalid choice: 'fancy'"),
    (DEEP, "construct --checkpoint {run} --dataset {tiny} --out {out}", 2,
     "the following arguments are required: --construct"),
    (DEEP, "construct --construct rand --checkpoint {missing} --dataset {tiny} --out {out}", 2, "{missing}"),
    (DEEP, "construct --construct rand --checkpoint {dir} --dataset {tiny} --out {out}", 2, "checkpoint.pt"),
    (DEEP, "construct --construct rand --checkpoint {run} --dataset {tiny} --out {file}", 2, "is an existing file"),
    (DEEP, "construct --construct rand --checkpoint {untrained_run} --dataset {tiny} --n 8 --steps 1 --no-progress "
           "--out {out}", 2, "below the minimum 0.500 (chance is 0.333); train it further, or pass --min-source-acc 0"),
    (DEEP, f"{_CONSTRUCT} --min-source-acc 2", 2, "--min-source-acc: expected an accuracy in [0, 1]"),
    (DEEP, f"{_CONSTRUCT} --min-source-acc abc", 2, "--min-source-acc: expected an accuracy in [0, 1]"),
    (DEEP, f"{_CONSTRUCT} --source-model nosuchmod:build", 2, "got both"),
    (DEEP, "construct --construct rand --source-model nosuchmod:build --dataset {tiny} --n 8 --steps 1 --no-progress "
           "--out {out}", 2, "module 'nosuchmod' does not import"),
    (DEEP, "import-madrylab {missing} --out {out}", 2, "{missing}"),
    (DEEP, "import-madrylab {file} --out {out}", 2, "f.txt"),
    (DEEP, "import-madrylab {dir} --out {out} --num-classes 0", 2, "--num-classes: expected an integer >= 1"),
    (DEEP, "export-madrylab {missing} --out {out}", 2, "{missing}"),
    (DEEP, "export-madrylab {dir} --out {out}", 2, "{dir}"),
    # -------------------------------------------------------------------------------- theory
    (THEORY, "tradeoff --p 1.5", 2, "p"),
    (THEORY, "tradeoff --p 0.3", 2, "p"),
    (THEORY, "tradeoff --p nan", 2, "p"),
    (THEORY, "tradeoff --p inf", 2, "p"),
    (THEORY, "tradeoff --p abc", 2, "--p: invalid float value: 'abc'"),
    (THEORY, "tradeoff --eta -1", 2, "eta"),
    (THEORY, "tradeoff --eta 0", 2, "eta"),
    (THEORY, "tradeoff --eta nan", 2, "eta"),
    (THEORY, "tradeoff --d 0", 2, "d must be an integer >= 1"),
    (THEORY, "tradeoff --d -5", 2, "d must be an integer >= 1"),
    (THEORY, "tradeoff --d 2.5", 2, "--d: invalid int value: '2.5'"),
    (THEORY, "gaussian --eps -1", 2, "eps must be finite and >= 0"),
    (THEORY, "gaussian --eps nan", 2, "eps must be finite and >= 0"),
    (THEORY, "gaussian --eps inf", 2, "eps must be finite and >= 0"),
    (THEORY, "gaussian --mu nan 1", 2, "--mu must be a finite vector"),
    (THEORY, "gaussian --sigma 1 2 3", 2, "--sigma needs d = 2"),
    (THEORY, "gaussian --sigma -1 1", 2, "sigma"),
    (THEORY, "gaussian --sigma 1 2 3 1", 2, "sigma"),
    (THEORY, "linear --eps -0.1", 2, "eps"),
    (THEORY, "linear --eps nan", 2, "eps"),
    (THEORY, "linear --ns 0 10", 2, "ns"),
    (THEORY, "linear --ns -1", 2, "ns"),
    (THEORY, "linear --ns abc", 2, "--ns: invalid int value: 'abc'"),
    (THEORY, "linear --seed -1", 2, "seed"),
    (THEORY, "all --d 0", 2, "d must be an integer >= 1"),
    (THEORY, "nonsense", 2, "invalid choice: 'nonsense'"),
    (THEORY, "", 2, "the following arguments are required: command"),
    # ------------------------------------------------------------------------------ ray_jobs
    (RAY, "run no-such-spec --dry-run --store {out}", 2, "no-such-spec"),
    (RAY, "status no-such-spec --store {out}", 2, "no-such-spec"),
    (RAY, "run {spec_bad_toml} --dry-run --store {out}", 2, "bad_toml.toml"),
    (RAY, "run {spec_unknown_key} --dry-run --store {out}", 2, "colour"),
    (RAY, "run {spec_bad_kind} --dry-run --store {out}", 2, "teleport"),
    (RAY, "run {spec_bad_needs} --dry-run --store {out}", 2, "ghost"),
    (RAY, "run {spec_empty_axis} --dry-run --store {out}", 2, "seed"),
    (RAY, "run {spec_theory_x} --dry-run --store {out}", 2, "theory_x"),
    (RAY, "run {spec_huge_grid} --dry-run --store {out}", 2, "grid"),
    (RAY, "run {dir} --dry-run --store {out}", 2, "{dir}"),
    (RAY, "run smoke --store {file}", 2, "f.txt"),
    (RAY, "status smoke --store {file}", 2, "f.txt"),
    (RAY, "run smoke --num-cpus -1 --store {out}", 2, "--num-cpus"),
    (RAY, "run smoke --num-cpus 0 --store {out}", 2, "--num-cpus"),
    (RAY, "run smoke --num-cpus abc --store {out}", 2, "--num-cpus"),
    (RAY, "run smoke --set nonsense --dry-run --store {out}", 2, "--set 'nonsense': expected STAGE.KEY=VALUE"),
    (RAY, "run smoke --set train.epochs=abc --dry-run --store {out}", 2, "recipe.epochs must be an integer >= 1"),
    (RAY, "run smoke --set ghost.epochs=1 --dry-run --store {out}", 2, "no stage 'ghost'"),
    (RAY, "run smoke --set train.colour=1 --dry-run --store {out}", 2, "unknown key 'colour'"),
    (RAY, "run smoke --scale nope --dry-run --store {out}", 2, "no [scale.nope] table"),
    (RAY, "run smoke --max-runs 0 --dry-run --store {out}", 2, "--max-runs"),
    (RAY, "launch smoke", 2, "invalid choice: 'launch'"),
    (RAY, "run", 2, "the following arguments are required: spec"),
    # ------------------------------------------------------------------------------- figures
    (FIG, "theory --samples 0 --out {out}", 2, "samples"),
    (FIG, "theory --samples -5 --out {out}", 2, "samples"),
    (FIG, "theory --samples abc --out {out}", 2, "--samples: invalid int value: 'abc'"),
    (FIG, "theory --svm-samples 0 --out {out}", 2, "svm_samples"),
    (FIG, "theory --mc-samples -1 --out {out}", 2, "mc_samples"),
    (FIG, "theory --out {file}", 2, "f.txt"),
    (FIG, "report --store {missing} --out {out}", 2, "{missing}"),
    (FIG, "report --store {file} --out {out}", 2, "f.txt"),
    (FIG, "report --spec no-such-spec --store {dir} --out {out}", 2, "no-such-spec"),
    (FIG, "nonsense", 2, "nonsense"),
    # --------------------------------------------------------------- --seeds (ray_jobs/seeds.py, issue 12)
    (RAY, "run smoke --seeds 0 0 --dry-run --store {out}", 2,
     "--seeds: [0] given more than once; seeds must be distinct"),
    (RAY, "run smoke --seeds -1 --dry-run --store {out}", 2, "--seeds: -1 is not a seed; seeds are integers >= 0"),
    (RAY, "run smoke --seeds abc --dry-run --store {out}", 2, "--seeds: invalid int value: 'abc'"),
    (RAY, "run smoke --seeds --dry-run --store {out}", 2, "--seeds: expected at least one argument"),
    (RAY, "run smoke --seeds " + " ".join(map(str, range(21))) + " --dry-run --store {out}", 2,
     "--seeds: got 21 seeds; give 1 to 20"),
    (RAY, "status smoke --seeds 1 1 --store {dir}", 2, "--seeds: [1] given more than once"),
    (FIG, "report --seeds 1 1 --store {dir} --out {out}", 2, "--seeds: [1] given more than once"),
    (FIG, "report --seeds x --store {dir} --out {out}", 2, "--seeds: invalid int value: 'x'"),
]


# ------------------------------------------------------------------------------------ fixtures
def _spec(stage_keys: str = "", config: str = 'function = "theory.cli:linear_report"\n', tail: str = "") -> str:
    """A one-stage spec of the ``theory`` kind (valid with the defaults)."""
    return f'[stages.a]\nkind = "theory"\n{stage_keys}[stages.a.config]\n{config}{tail}'



class _Evil:
    def __reduce__(self):  # unpickling calls print: what weights_only=True must refuse
        return (print, ("unpickled!",))


def make_files(root: Path, tiny: str, run: Path) -> dict[str, str]:
    """Write the damaged inputs under ``root``; return the placeholder values (except ``{out}``)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "f.txt").write_text("just text\n")
    (root / "empty").mkdir(exist_ok=True)
    (root / "bad.json").write_text("{not json")
    (root / "list.json").write_text("[1, 2]")
    (root / "unknown.json").write_text('{"colour": "red"}')
    (root / "corrupt.npz").write_bytes(b"PK\x03\x04 this is no zip archive")
    whole = Path(tiny.removeprefix("npz:")).read_bytes()
    (root / "truncated.npz").write_bytes(whole[: len(whole) // 2])
    garbage = root / "garbage_run"
    garbage.mkdir(exist_ok=True)
    (garbage / "checkpoint.pt").write_bytes(np.random.default_rng(0).bytes(2048))
    evil = root / "evil_run"  # a checkpoint that would run code if unpickled
    shutil.copytree(run, evil, dirs_exist_ok=True)
    torch.save({"model": _Evil()}, evil / "checkpoint.pt")
    untrained = root / "untrained_run"  # the logreg with its head zeroed: every logit equal, always class 0
    shutil.copytree(run, untrained, dirs_exist_ok=True)
    state = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=True)
    state["model"] = {k: v.zero_() if k.startswith("head.") else v for k, v in state["model"].items()}
    torch.save(state, untrained / "checkpoint.pt")
    specs = {
        "bad_toml": "[stages.a\nkind = ",
        "unknown_key": _spec("colour = 1\n"),
        "bad_kind": _spec().replace('"theory"', '"teleport"'),
        "bad_needs": _spec('needs = { x = "ghost" }\n'),
        "empty_axis": _spec(tail="[stages.a.grid]\nseed = []\n"),
        "theory_x": _spec(config='function = "theory_x:linear_report"\n'),
        "huge_grid": _spec(tail="[stages.a.grid]\n" + "".join(f"_k{i} = [{', '.join(map(str, range(10)))}]\n"
                                                               for i in range(7))),
    }
    values = {"tiny": tiny, "run": str(run), "file": str(root / "f.txt"), "dir": str(root / "empty"),
              "missing": str(root / "nope"), "bad_json": str(root / "bad.json"), "list_json": str(root / "list.json"),
              "unknown_json": str(root / "unknown.json"), "corrupt_npz": f"npz:{root / 'corrupt.npz'}",
              "truncated_npz": f"npz:{root / 'truncated.npz'}", "garbage_run": str(garbage), "evil_run": str(evil),
              "untrained_run": str(untrained)}
    for name, text in specs.items():
        (root / f"{name}.toml").write_text(text)
        values[f"spec_{name}"] = str(root / f"{name}.toml")
    return values


def expand(argv: str, values: dict[str, str], out: Path) -> list[str]:
    return shlex.split(argv.format(**values, out=str(out)))


# ------------------------------------------------------------------------------- the worker
def _entry(module: str):
    from deep.cli.errors import run_cli

    if module == DEEP:
        from deep.cli import main
        return main
    if module == THEORY:
        from theory.cli import main
        return main
    if module == RAY:
        from ray_jobs.cli import main as ray_main
        return lambda argv: run_cli(ray_main, argv, prog="python -m ray_jobs")
    from figures.__main__ import main as fig_main
    return lambda argv: run_cli(fig_main, argv, prog="python -m figures")


def run_case(module: str, argv: list[str]) -> tuple[int, str]:
    """(exit status, stderr) of one case, in-process, as the ``python -m`` entry point would give them."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = _entry(module)(argv)
        except SystemExit as exc:  # --help and anything that exits by itself
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException as exc:  # a traceback in real life
            import traceback
            traceback.print_exc(file=err)
            code = 1
            del exc
    return int(code or 0), err.getvalue()


if __name__ == "__main__":
    jobs = json.load(sys.stdin)
    for module, argv in jobs:
        code, stderr = run_case(module, argv)
        print(json.dumps({"code": code, "stderr": stderr}), flush=True)
