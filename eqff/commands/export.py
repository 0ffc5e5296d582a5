"""``eqff export``: an eqff model as a file that other simulation engines load.

``--format metatomic`` (the only format so far) writes a metatomic ``AtomisticModel``
(:mod:`eqff.integrations.metatomic`) for LAMMPS (``pair_style metatomic``), i-PI, ASE
(metatomic-ase) and other engines with a metatomic interface. Needs ``metatomic-torch``.
"""

import argparse

from eqff.errors import EqffError
from eqff.model_file import DEFAULT_POTENTIAL, read_model_file

FORMATS = ("metatomic",)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help=f"model file (.eqff) or shipped potential, e.g. {DEFAULT_POTENTIAL}")
    parser.add_argument("output", help="file to write (metatomic: a TorchScript file, conventionally .pt)")
    parser.add_argument("--format", choices=FORMATS, default="metatomic", help="what to write")
    parser.add_argument("--dtype", choices=["float32", "float64"], help="the exported model's dtype, "
                        "which the engine must use (default: the dtype the model was saved in)")


def run(args: argparse.Namespace) -> int:
    try:
        from eqff.integrations.metatomic import TorchScriptError, export_metatomic
    except ImportError as error:
        raise SystemExit(
            f"error: --format metatomic needs metatomic-torch, and {error.name} does not import here ({error}); "
            "install it with: pip install metatomic-torch"
        ) from None
    content = read_model_file(args.model)
    try:
        path = export_metatomic(args.model, args.output, dtype=args.dtype)
    except TorchScriptError as error:
        raise SystemExit(f"error: {error}") from None
    except OSError as error:
        raise EqffError(str(error)) from None
    from metatomic.torch import load_atomistic_model

    exported = load_atomistic_model(str(path))  # checks the file as an engine would
    capabilities = exported.capabilities()
    cutoff = exported.requested_neighbor_lists()[0].cutoff
    print(f"eqff export: wrote {path}, a metatomic model of {args.model} ({content['architecture']})")
    print(f"  atomic types {capabilities.atomic_types}, length unit {capabilities.length_unit}, energy in eV, "
          f"dtype {capabilities.dtype}, neighbour-list cutoff {cutoff:g} Å, "
          f"interaction range {capabilities.interaction_range:g} Å")
    print(f"  ASE: metatomic_ase.MetatomicCalculator({str(path)!r}); LAMMPS: pair_style metatomic {path}, "
          "pair_coeff * * <atomic number of each LAMMPS atom type>")
    return 0
