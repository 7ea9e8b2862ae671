"""Training (SPEC §4, §6): ``Recipe`` (all hyper-parameters), ``train`` (resumable runs), ``load_run``."""
from deep.runfolder import load_run

from .checkpoint import load_checkpoint
from .loop import train
from .recipe import METHODS, SCHEDULES, Recipe, add_recipe_arguments, recipe_from_args

__all__ = ["Recipe", "train", "load_run", "load_checkpoint", "METHODS", "SCHEDULES", "add_recipe_arguments",
           "recipe_from_args"]
