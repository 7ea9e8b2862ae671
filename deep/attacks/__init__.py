"""Adversarial attacks (torchattacks style): ``atk = PGD(model, ...); x_adv = atk(x, y)``.

See docs/DESIGN.md §deep.attacks and SPEC §0, §4–6.
"""
from .base import Attack
from .fast_fgsm import FastFGSM
from .fgsm import FGSM
from .losses import attack_objective, attack_success
from .pgd import PGD
from .representation import RepresentationMatch

__all__ = ["Attack", "FGSM", "PGD", "FastFGSM", "RepresentationMatch", "attack_objective", "attack_success"]
