"""Bridges from eqff models to simulation engines (ASE, OpenMM)."""
