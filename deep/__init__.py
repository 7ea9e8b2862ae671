"""Image experiments: data, models, attacks, training, evaluation, dataset construction (SPEC §0, §4–6)."""
