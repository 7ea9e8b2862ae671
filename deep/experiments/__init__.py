"""Paper-specific experiments built on deep/ (one module per paper): the logic the ray_jobs kinds call."""
