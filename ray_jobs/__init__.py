"""Experiment grids as Ray tasks, with a result store that lets a re-run resume."""
