"""Adversarial attacks (torchattacks style): ``atk = PGD(model); x_adv = atk(x, y)``.

One file per attack (paper names); each registers its suite names with :mod:`.registry`, which every
command, spec and ``deep.evaluate`` uses to parse them (``parse_attack``, ``build_attack``).

See docs/DESIGN.md §deep.attacks and SPEC §0, §4–6.
"""
from .base import Attack
from .fast_fgsm import FastFGSM
from .fgsm import FGSM
from .objectives import attack_objective, attack_success
from .pgd import PGD, PGDL2
from .representation import RepresentationMatch

__all__ = ["Attack", "FGSM", "PGD", "PGDL2", "FastFGSM", "RepresentationMatch", "attack_objective", "attack_success"]
