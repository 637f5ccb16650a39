"""The study's experiments (`python -m astrobio.experiments`): baselines, ablation, gradient
flow, physics validation and loss weighting, into one report."""
