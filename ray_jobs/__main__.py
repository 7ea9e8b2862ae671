"""Entry point for ``python -m ray_jobs``."""
import sys

from ray_jobs.cli import main

sys.exit(main())
