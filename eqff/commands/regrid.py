"""``eqff regrid``: a PONITA model file with its weights on a sphere grid of another size.

No PONITA weight depends on the number N of orientations of its grid (``eqff/models/ponita.py``),
so a model trained on one grid runs on any other: a finer grid discretises the sphere more
closely and lowers the rotation error (``eqff equivariance`` measures it), at a higher cost per
call. The new file keeps the source's metadata (its training data, split and validation error,
which was measured on the source's grid) and records the source under ``regridded_from``.
"""

import argparse

from eqff.errors import EqffError
from eqff.model_file import load_model, save_model


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="PONITA model file (.eqff) or shipped potential")
    parser.add_argument("output", help="model file to write (.eqff)")
    parser.add_argument("--orientations", type=int, required=True, metavar="N", help="orientations of the new grid (N > 0)")


def run(args: argparse.Namespace) -> int:
    model, content = load_model(args.model)
    if content["architecture"] != "ponita":
        raise EqffError(f"{args.model} is a {content['architecture']} model; only PONITA has a sphere grid to change")
    if args.orientations < 1:
        raise EqffError(f"--orientations must be positive, got {args.orientations}")
    source_grid = len(model.orientations)
    try:
        moved = model.on_grid(args.orientations)
    except ValueError as error:
        raise EqffError(f"{args.model}: {error}") from None
    metadata = {key: value for key, value in content["metadata"].items() if key not in ("eqff_version", "created")}
    metadata["regridded_from"] = {
        "model": str(args.model),
        "weights_sha256": content["weights_sha256"],
        "num_orientations": source_grid,
    }
    path = save_model(args.output, moved, metadata)
    print(f"eqff regrid: wrote {path}, {args.model}'s weights on {args.orientations} orientations (from {source_grid})")
    return 0
