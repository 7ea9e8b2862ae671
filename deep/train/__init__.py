"""Training (SPEC §4, §6): ``Recipe`` (data, model, optimiser, threat, held-out check and method configs),
``train`` (resumable runs), ``load_run``, and the training-method registry (``register_method``)."""
from deep.runfolder import load_run

from .checkpoint import load_checkpoint
from .loop import train
from .methods import MethodConfig, TrainingMethod, method_names, register_method
from .recipe import SCHEDULES, Recipe, add_recipe_arguments, recipe_from_args

__all__ = ["Recipe", "train", "load_run", "load_checkpoint", "SCHEDULES", "add_recipe_arguments",
           "recipe_from_args", "TrainingMethod", "MethodConfig", "register_method", "method_names"]
