"""Robust and non-robust datasets (Ilyas et al. 2019, §3; SPEC §5; DESIGN §deep.construct).

construct_dataset(kind, source_run=... | source_model=..., dataset=..., out_dir=...) builds D̂_R ("robust"), D̂_NR
("nonrobust"), D̂_rand ("rand") or D̂_det ("det") into a directory that deep.data.load_split reads;
import_madrylab / export_madrylab convert the released `CIFAR_ims` / `CIFAR_lab` folders.
"""
from .adversarial import TARGET_RULES, choose_targets
from .build import DEFAULT_STEPS, KINDS, build_from_tensors, construct_dataset
from .madrylab import export_madrylab, import_madrylab
from .robust import derangement
from .shards import read_constructed, read_provenance
from .source import (HELD_OUT_N, LoadedSource, SourceAccuracy, check_source_accuracy, default_min_source_acc,
                     held_out_accuracy, load_source)

__all__ = ["KINDS", "DEFAULT_STEPS", "TARGET_RULES", "construct_dataset", "build_from_tensors", "choose_targets",
           "derangement", "import_madrylab", "export_madrylab", "read_constructed", "read_provenance",
           "HELD_OUT_N", "SourceAccuracy", "check_source_accuracy", "default_min_source_acc", "held_out_accuracy",
           "LoadedSource", "load_source"]
