"""The openmm-ml entry point of eqff: ``MLPotential("eqff", modelPath=...)``.

openmm-ml loads every registered plugin while ``openmmml`` itself is being imported, so this
module must not import ``openmmml``: :mod:`eqff.integrations.openmm`, which subclasses
openmm-ml's classes, is imported only when a potential is created.
"""

import os


class EqffPotentialImplFactory:
    """Creates :class:`eqff.integrations.openmm.EqffPotentialImpl` objects (openmm-ml's factory protocol)."""

    def createImpl(self, name: str, modelPath: str | os.PathLike | None = None):
        from eqff.integrations.openmm import EqffPotentialImpl

        return EqffPotentialImpl(name, modelPath)
