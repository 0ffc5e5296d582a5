"""``eqff report``: each model's test errors, MD energy drift and stability, and their plots."""
