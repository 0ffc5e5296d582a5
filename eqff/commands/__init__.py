"""Subcommands of the ``eqff`` command line (see :mod:`eqff.cli`)."""
