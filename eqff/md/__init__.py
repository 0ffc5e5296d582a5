"""Molecular dynamics with eqff potentials through ASE: runs (NVE, Langevin NVT, progress bars),
what they are judged by (energy drift, bond stability, h(r)) and the structures of benchmarks."""
