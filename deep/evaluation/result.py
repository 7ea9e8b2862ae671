"""EvalResult: the typed, versioned result of ``deep.evaluation.evaluate`` and its JSON form.

JSON written by :meth:`EvalResult.to_dict` / :meth:`EvalResult.save` (schema ``advfeat.eval/1``)::

    {"schema": "advfeat.eval/1",
     "clean": acc, "attacks": {name: acc}, "worst_case": acc,        # fractions in [0, 1]
     "n": N, "eps": ε, "norm": "linf" | "l2", "seed": int,
     "mean_confidence_on_errors": {name: mean max-softmax on misclassified adversarial examples | null},
     "params": {name: {"kind", "steps", "restarts", "alpha", "loss"}}, "seconds": {name: s},
     "versions": {name: "advfeat==0.1.0" | "pyautoattack==0.2.0" | ...},
     "flags": ["<attack>: <warning>", ...],                          # gradient-masking and other warnings
     "correct": {"clean" | name | "worst_case": bits},              # per-example correctness
     "clean_error": 1 − clean, "error_rates": {name: 1 − acc}, "worst_case_error": 1 − worst_case,
     ...context keys (dataset, split, checkpoint, model_recipe, ...) kept in ``extra``}

``bits`` is base64 (RFC 4648) of the correctness vector packed MSB-first (numpy.packbits): bit i is
example i, padding bits are 0. The ``*_error`` keys are derived (never read back). Files written
before the schema existed (no ``schema``, ``seed``, ``versions``, ``flags`` or ``correct``) load with
those fields empty. ``worst_case`` is the per-example worst case over the clean input and every
attack: an example counts as robust only if it is correct clean and under every attack (SPEC §0).
"""
from __future__ import annotations

import base64
import importlib.metadata
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from numbers import Integral, Real
from pathlib import Path
from typing import Any

import numpy as np

from deep.units import NORMS, format_eps

SCHEMA = "advfeat.eval/1"
DERIVED_KEYS = ("clean_error", "error_rates", "worst_case_error")
CORE_KEYS = ("schema", "clean", "attacks", "worst_case", "n", "eps", "norm", "seed", "mean_confidence_on_errors",
             "params", "seconds", "versions", "flags", "correct")


def package_version() -> str:
    """``advfeat==<version>`` of this package (the version of its own attacks)."""
    try:
        return f"advfeat=={importlib.metadata.version('advfeat')}"
    except importlib.metadata.PackageNotFoundError:
        return "advfeat==unknown"


def pack_bits(mask: np.ndarray | Any) -> str:
    """A bool vector as base64 of its MSB-first packed bits."""
    return base64.b64encode(np.packbits(np.asarray(mask, dtype=bool))).decode("ascii")


def unpack_bits(text: str, n: int, *, name: str = "correct") -> np.ndarray:
    """Inverse of :func:`pack_bits` for a vector of length n; ValueError when it does not decode to n bits."""
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (ValueError, AttributeError) as e:
        raise ValueError(f"{name}: not base64 text ({e})") from None
    if len(raw) != (n + 7) // 8:
        raise ValueError(f"{name}: holds {len(raw)} bytes, {n} examples need {(n + 7) // 8}")
    return np.unpackbits(np.frombuffer(raw, dtype=np.uint8))[:n].astype(bool)


# ----------------------------------------------------------------------------------- validation
def _acc(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value) or not 0 <= value <= 1:
        raise ValueError(f"{name} must be a finite accuracy in [0, 1], got {value!r}")
    return float(value)


def _mapping(name: str, value: object) -> Mapping[str, Any]:
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise ValueError(f"{name} must be a JSON object with string keys, got {type(value).__name__}")
    return value


def _seconds(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number of seconds >= 0, got {value!r}")
    return float(value)


def _count(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


@dataclass
class EvalResult:
    """Clean and per-attack accuracy, the per-example worst case, and how they were obtained.

    ``correct`` maps "clean", each attack name and "worst_case" to bool vectors [n] (numpy).
    ``extra`` holds context that callers add (dataset, split, checkpoint, ...), written at the top
    level of the JSON. Dict-style reads (``result["clean"]``, ``{**result}``) return the JSON values,
    so code written against the earlier plain-dict result keeps working.
    """

    clean: float
    attacks: dict[str, float]
    worst_case: float
    n: int
    eps: float
    norm: str
    seed: int | None = None
    mean_confidence_on_errors: dict[str, float | None] = field(default_factory=dict)
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)
    correct: dict[str, np.ndarray] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """ValueError naming the first field with a wrong type or an out-of-range value."""
        _acc("clean", self.clean)
        _acc("worst_case", self.worst_case)
        for name, acc in _mapping("attacks", self.attacks).items():
            _acc(f"attacks[{name!r}]", acc)
        _count("n", self.n, 1)
        if isinstance(self.eps, bool) or not isinstance(self.eps, Real) or not math.isfinite(self.eps) or self.eps < 0:
            raise ValueError(f"eps must be a finite number >= 0, got {self.eps!r}")
        if self.norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {self.norm!r}")
        if self.seed is not None:
            _count("seed", self.seed, 0)
        for name, conf in _mapping("mean_confidence_on_errors", self.mean_confidence_on_errors).items():
            if conf is not None:
                _acc(f"mean_confidence_on_errors[{name!r}]", conf)
        for name, s in _mapping("seconds", self.seconds).items():
            _seconds(f"seconds[{name!r}]", s)
        for name, p in _mapping("params", self.params).items():
            _mapping(f"params[{name!r}]", p)
        if not all(isinstance(v, str) for v in _mapping("versions", self.versions).values()):
            raise ValueError(f"versions must map attack names to strings, got {self.versions!r}")
        if not isinstance(self.flags, list) or not all(isinstance(f, str) for f in self.flags):
            raise ValueError(f"flags must be a list of strings, got {self.flags!r}")
        for name, mask in _mapping("correct", self.correct).items():
            if np.shape(mask) != (self.n,):
                raise ValueError(f"correct[{name!r}] must have {self.n} entries, got shape {np.shape(mask)}")
        _mapping("extra", self.extra)

    # -- derived ---------------------------------------------------------------------------------
    @property
    def clean_error(self) -> float:
        return 1.0 - self.clean

    @property
    def error_rates(self) -> dict[str, float]:
        return {name: 1.0 - acc for name, acc in self.attacks.items()}

    @property
    def worst_case_error(self) -> float:
        return 1.0 - self.worst_case

    # -- JSON ------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.extra)
        out.update({
            "schema": SCHEMA, "clean": self.clean, "attacks": dict(self.attacks), "worst_case": self.worst_case,
            "n": self.n, "eps": self.eps, "norm": self.norm, "seed": self.seed,
            "mean_confidence_on_errors": dict(self.mean_confidence_on_errors), "params": dict(self.params),
            "seconds": dict(self.seconds), "versions": dict(self.versions), "flags": list(self.flags),
            "correct": {name: pack_bits(mask) for name, mask in self.correct.items()},
            "clean_error": self.clean_error, "error_rates": self.error_rates,
            "worst_case_error": self.worst_case_error,
        })
        return out

    @classmethod
    def from_dict(cls, obj: Any) -> EvalResult:
        """Validate and rebuild; ValueError naming the bad key. Derived keys are recomputed, not read."""
        obj = _mapping("evaluation result", obj)
        schema = obj.get("schema", SCHEMA)  # files from before the schema field: the same layout
        if schema != SCHEMA:
            raise ValueError(f"schema must be {SCHEMA!r}, got {schema!r}")
        missing = [k for k in ("clean", "attacks", "worst_case", "n", "eps", "norm") if k not in obj]
        if missing:
            raise ValueError(f"evaluation result lacks key(s) {missing}")
        n = _count("n", obj["n"], 1)
        correct = {name: unpack_bits(bits, n, name=f"correct[{name!r}]")
                   for name, bits in _mapping("correct", obj.get("correct", {})).items()}
        extra = {k: v for k, v in obj.items() if k not in CORE_KEYS and k not in DERIVED_KEYS}
        maps = {key: dict(_mapping(key, obj.get(key, {})))
                for key in ("attacks", "mean_confidence_on_errors", "params", "seconds", "versions")}
        flags = obj.get("flags", [])
        return cls(clean=obj["clean"], worst_case=obj["worst_case"], n=n, eps=obj["eps"], norm=obj["norm"],
                   seed=obj.get("seed"), flags=flags if not isinstance(flags, list) else list(flags),
                   correct=correct, extra=extra, **maps)

    def save(self, path: str | Path) -> None:
        """Atomically write :meth:`to_dict` as JSON (deep.io.write_json)."""
        from deep.io import write_json

        write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> EvalResult:
        """Read and validate a file written by :meth:`save` (or an older metrics.json of an eval run);
        the ValueError names the file."""
        from deep.io import read_json

        try:
            return cls.from_dict(read_json(path))
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None

    # -- RobustBench -----------------------------------------------------------------------------
    def to_robustbench(self, *, attack: str | None = None, **info: Any) -> dict[str, Any]:
        """RobustBench model-info fields: ``clean_acc`` and ``autoattack_acc`` as percent strings with
        two decimals ("85.34"), ``eps`` as "8/255" when it is k/255, ``threat_model`` "Linf"/"L2".

        attack: whose accuracy is ``autoattack_acc`` (default "aa-standard"; "worst_case" = the
        per-example worst case over the suite). ``info`` adds the fields filled by hand (name, link,
        authors, architecture, dataset, venue, additional_data, ...).
        """
        attack = attack or "aa-standard"
        if attack == "worst_case":
            robust = self.worst_case
        elif attack in self.attacks:
            robust = self.attacks[attack]
        else:
            raise ValueError(f"no result for attack {attack!r} to export as autoattack_acc; this evaluation "
                             f"ran {sorted(self.attacks)} (or pass attack='worst_case')")
        out = {"number_forward_passes": 1, **info}
        out.update({"threat_model": {"linf": "Linf", "l2": "L2"}[self.norm], "eps": format_eps(self.eps),
                    "clean_acc": f"{100 * self.clean:.2f}", "autoattack_acc": f"{100 * robust:.2f}"})
        return out

    # -- dict-style reads (the pre-EvalResult API) ---------------------------------------------------
    def __getitem__(self, key: str) -> Any:
        return self.to_dict()[key]

    def __setitem__(self, key: str, value: Any) -> None:
        if key in CORE_KEYS or key in DERIVED_KEYS:
            raise KeyError(f"{key!r} is a result field; set the attribute instead")
        self.extra[key] = value

    def __contains__(self, key: object) -> bool:
        return key in self.to_dict()

    def keys(self) -> Iterator[str]:
        return iter(self.to_dict().keys())

    def get(self, key: str, default: Any = None) -> Any:
        return self.to_dict().get(key, default)
