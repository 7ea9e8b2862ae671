"""Options shared by the sub-commands, the flag conventions, and the output-folder guard.

Flag names (one per concept, the same in every command; the README lists them too):

- ``--n``: use the first N examples of a split. ``train --subset`` is a different concept (a random,
  seeded subset) and keeps its name.
- ``--attacks``: attack name(s) of the registry (``fgsm``, ``pgd-K``, ``pgd-KxR``, ``cw-K``, ...).
- ``--alpha``: attack step size in pixel units. ``--eps``: attack radius in pixel units, a number or a
  fraction such as ``8/255``.
- ``--construct``: which dataset ``construct`` builds.

Old spellings (``--first-n``, ``--attack``, ``--step``, ``--kind``) are still accepted for one release
and print a deprecation note to stderr.
"""
from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from deep.units import check_eps, parse_eps, parse_norm

from .errors import UsageError

REQUIRED_PREFIX = "_required_"
#: Datasets that torchvision can download (``--download``); the others are files you provide.
DOWNLOADABLE: tuple[str, ...] = ("mnist", "fashion-mnist", "cifar10")


# ----------------------------------------------------------------------------- flag value types
def eps_value(text: str) -> float:
    """argparse type of ε and step sizes: a number or a fraction ``a/b`` (e.g. ``8/255``)."""
    try:
        return parse_eps(text)
    except ValueError as err:  # argparse shows ArgumentTypeError's text, not a generic "invalid value"
        raise argparse.ArgumentTypeError(str(err)) from None


def norm_value(text: str) -> str:
    """argparse type of ``--norm``: linf or l2, any capitalisation (torchattacks writes "Linf", "L2")."""
    try:
        return parse_norm(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def int_at_least(minimum: int) -> Callable[[str], int]:
    """argparse type of a count: an integer >= minimum, with a message naming the bound."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {value}")
        return value

    return parse


positive_int = int_at_least(1)   # batch sizes, steps, N
nonneg_int = int_at_least(0)     # seeds


def check_eps_range(eps: float, norm: str) -> None:
    """ε above the norm's range (1 for ℓ∞ in pixel units) is almost always a units mistake (8 for 8/255)."""
    check_eps(eps, norm, name="--eps")


# ------------------------------------------------------------------------ deprecated spellings
class _DeprecatedFlag(argparse.Action):
    """Stores like the new flag and prints a one-line note naming the new spelling."""

    def __init__(self, option_strings: list[str], dest: str, new: str = "", **kw: Any) -> None:
        self.new = new
        super().__init__(option_strings, dest, **kw)

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        print(f"{parser.prog}: note: {option_string} is deprecated and will be removed in the next release; "
              f"use {self.new}", file=sys.stderr)
        setattr(namespace, self.dest, values)


def add_deprecated_alias(parser: argparse.ArgumentParser, old: str, new: str) -> None:
    """Accept ``old`` as a hidden alias of the existing flag ``new`` (same dest, type and nargs)."""
    target = parser._option_string_actions[new]
    if target.required:  # argparse would not count the alias as giving it: check after parsing instead
        target.required = False
        parser.set_defaults(**{REQUIRED_PREFIX + target.dest: new})
    parser.add_argument(old, dest=target.dest, action=_DeprecatedFlag, new=new, nargs=target.nargs,
                        type=target.type, choices=target.choices, default=argparse.SUPPRESS,
                        help=argparse.SUPPRESS)


def check_required(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """The required flags that have a deprecated alias: given under one of their names?"""
    for key, flag in vars(args).items():
        if key.startswith(REQUIRED_PREFIX) and getattr(args, key.removeprefix(REQUIRED_PREFIX), None) is None:
            prog = f"{parser.prog} {getattr(args, 'command', '')}".rstrip()
            raise UsageError(prog, f"the following arguments are required: {flag}")


def rename_flag(parser: argparse.ArgumentParser, old: str, new: str) -> None:
    """Rename a generated flag (e.g. Recipe's ``--first-n`` to ``--n``), keeping ``old`` as an alias."""
    action = parser._option_string_actions.pop(old, None)
    if action is None:  # the generator no longer makes it
        return
    action.option_strings = [new if s == old else s for s in action.option_strings]
    action.metavar = action.metavar or new.lstrip("-").replace("-", "_").upper()
    parser._option_string_actions[new] = action
    add_deprecated_alias(parser, old, new)


# ----------------------------------------------------------------------------- shared options
def add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-root", default=None,
                        help="folder holding the datasets (default: $ADVFEAT_DATA, else ~/.local/share/advfeat/data)")
    parser.add_argument("--download", action="store_true",
                        help=f"download {', '.join(DOWNLOADABLE)} into the data root if missing (needs a network)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                        help="where to compute: auto picks CUDA when present, else the CPU (default: auto)")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="hide progress bars")


def add_attack_options(parser: argparse.ArgumentParser, *, checkpoint_required: bool = True) -> None:
    parser.add_argument("--checkpoint", required=checkpoint_required,
                        help="a run folder (from `train`) or its checkpoint.pt file")
    parser.add_argument("--eps", type=eps_value, required=True,
                        help="attack radius ε in pixel units ([0, 1] scale), e.g. 0.3 or 8/255")
    parser.add_argument("--norm", default="linf", type=norm_value, help="threat model norm: linf or l2 (default: linf)")
    parser.add_argument("--alpha", type=eps_value, default=None,
                        help="PGD step size in pixel units (default: 2.5·ε/steps, Madry's rule)")
    parser.add_argument("--dataset", default=None, help="dataset to attack (default: the run's dataset)")
    parser.add_argument("--split", default="test", choices=("train", "test"), help="which split to use (default: test)")
    parser.add_argument("--n", type=positive_int, default=None,
                        help="use only the first N examples of the split (default: all)")
    parser.add_argument("--offset", type=nonneg_int, default=0,
                        help="skip the first K examples (with --n: examples K .. K+N-1), to split one long "
                             "evaluation into shards (default: 0)")
    parser.add_argument("--batch-size", type=positive_int, default=256, help="examples per attack batch (default: 256)")
    parser.add_argument("--seed", type=nonneg_int, default=0, help="seed of the attacks' random starts (default: 0)")
    parser.add_argument("--out", required=True, help="output folder (metrics.json is written there)")


def prefetch(dataset: str, data_root: Path, download: bool) -> None:
    """With ``--download``, fetch a torchvision dataset's train and test files before the work starts."""
    if download and dataset in DOWNLOADABLE:
        from deep.data import load_split

        for split in ("train", "test"):
            load_split(dataset, split, data_root=data_root, first_n=1, download=True)


def load_model_and_split(args: argparse.Namespace, loader: Callable[[Any], tuple[Any, dict]] | None = None):
    """(model on the chosen device, split, recipe dict) for eval/attack; ``loader(device) -> (model,
    recipe)`` replaces the run folder (``eval --model``/``--torchvision``)."""
    from deep.data import load_split
    from deep.dataroot import resolve_data_root
    from deep.device import resolve_device
    from deep.train import load_run

    check_eps_range(args.eps, args.norm)
    check_out_path(args.out)
    device = resolve_device(args.device)
    model, recipe = load_run(args.checkpoint, device=device) if loader is None else loader(device)
    dataset = args.dataset or recipe["dataset"]
    split = load_split(dataset, args.split, data_root=resolve_data_root(args.data_root), first_n=args.n,
                       offset=args.offset, download=args.download and dataset in DOWNLOADABLE)
    return model, split, recipe


# ------------------------------------------------------------------------------ output folder
def check_out_path(out: str | Path) -> Path:
    """``--out`` must be a folder path: refuse an existing file before any work is done."""
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(f"--out {str(path)!r} is an existing file; give a folder path")
    for parent in path.parents:
        if parent.exists() and not parent.is_dir():
            raise NotADirectoryError(f"--out {str(path)!r}: {str(parent)!r} is a file, not a folder")
    return path


@contextlib.contextmanager
def output_folder(out: str | Path, command: str) -> Iterator[Path]:
    """Create ``--out`` when the work starts, hold the output lock for the command's lifetime, and
    remove the folder again if the command fails before writing anything into it."""
    path = check_out_path(out)
    created = [p for p in (path, *path.parents) if not p.exists()]
    path.mkdir(parents=True, exist_ok=True)
    try:
        with _lock(path, command):
            yield path
    except BaseException:
        for folder in created:  # innermost first; only folders this command made and left empty
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise


def _lock(path: Path, command: str) -> contextlib.AbstractContextManager:
    from deep.io import output_lock  # late: `python -m deep --help` stays quick

    return output_lock(path, command)
