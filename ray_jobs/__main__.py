"""Entry point for ``python -m ray_jobs`` (errors: one line and exit 2, see :mod:`deep.cli.errors`)."""
import sys

from deep.cli.errors import run_cli
from ray_jobs.cli import interrupted_message, main

sys.exit(run_cli(main, prog="python -m ray_jobs", interrupted=interrupted_message))
