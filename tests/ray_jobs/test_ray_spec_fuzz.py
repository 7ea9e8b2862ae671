"""Spec parsing on random TOML (issue 13): any document either parses or is refused with SpecError /
FileNotFoundError naming the problem; nothing else ever escapes (no KeyError, TypeError, ...)."""
from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ray_jobs.schema import validate_spec
from ray_jobs.spec import SpecError, expand, load_spec

# Real key names mixed with misspellings, so documents reach deep into the parser as well as failing early.
KEYS = ["kind", "needs", "config", "grid", "resources", "max_retries", "retry_failed", "report", "on", "stage",
        "num_cpus", "num_gpus", "dataset", "model", "eps", "first_n", "n", "suite", "attacks", "epochs", "seed",
        "learning_rate", "epsilon", "_construct", "construct", "rows", "x"]
KINDS = ["train", "eval", "construct", "theory", "transfer", "probe", "nope"]
scalars = st.one_of(st.integers(-3, 10 ** 12), st.floats(allow_nan=False, allow_infinity=False), st.booleans(),
                    st.sampled_from(KINDS + ["mnist", "mlp", "pgd-20", "s1", "8/255", ""]))


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return "{ " + ", ".join(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"


values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(st.sampled_from(KEYS), inner, max_size=3)),
                      max_leaves=6)
STAGES = ["s1", "s2", "train", "eval"]
configs = st.dictionaries(st.sampled_from(KEYS), scalars, max_size=4)
# Mostly well-formed stages with random content (they reach the grid, needs and schema checks), some
# entirely random tables (they exercise the early refusals).
structured = st.fixed_dictionaries({"kind": st.sampled_from(KINDS)}, optional={
    "config": configs,
    "grid": st.dictionaries(st.sampled_from(KEYS), st.lists(st.one_of(scalars, configs), max_size=3), max_size=2),
    "needs": st.dictionaries(st.sampled_from(["model", "source", "dataset"]),
                             st.one_of(st.sampled_from(STAGES), st.fixed_dictionaries(
                                 {"stage": st.sampled_from(STAGES), "on": st.lists(st.sampled_from(KEYS), max_size=2)})),
                             max_size=2),
    "resources": st.dictionaries(st.sampled_from(["num_cpus", "num_gpus", "memory"]), scalars, max_size=2),
    "report": st.dictionaries(st.sampled_from(["rows", "render", "x"]), st.lists(scalars, max_size=2), max_size=1),
    "max_retries": scalars})
stage_tables = st.one_of(structured, structured, st.dictionaries(st.sampled_from(KEYS), values, max_size=6))
documents = st.dictionaries(st.sampled_from(STAGES), stage_tables, min_size=1, max_size=3)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(documents, st.booleans())
def test_random_toml_parses_or_is_refused_with_a_spec_error(tmp_path, stages, with_header):
    lines = ['[spec]\nname = "fuzz"\n'] if with_header else []
    for name, table in stages.items():
        lines.append(f"[stages.{name}]")
        lines += [f"{json.dumps(k)} = {_toml_value(v)}" for k, v in table.items()]
    path = tmp_path / "fuzz.toml"
    path.write_text("\n".join(lines) + "\n")
    try:
        spec = load_spec(path)
        validate_spec(spec)
        expand(spec)
    except SpecError as err:
        assert "fuzz.toml" in str(err) or "stage" in str(err), err  # the message says where
