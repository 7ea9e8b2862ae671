"""Closed-form and numerical models of robust and non-robust features (SPEC §1–4)."""
