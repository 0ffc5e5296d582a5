"""Training eqff force fields on Lightning: configs, splits, datasets, loss, metrics and runs.

``eqff train CONFIG`` calls :func:`eqff.train.run.train`; ``eqff evaluate`` uses
:func:`eqff.train.metrics.evaluate`. See ``training/README.md`` for the config format.
"""
