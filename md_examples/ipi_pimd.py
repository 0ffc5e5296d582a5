"""Path-integral MD of a small molecule with i-PI, its forces from eqff clients over a socket.

i-PI (the ``i-pi`` command of the ``ipi`` package) runs the ring-polymer dynamics: ``--beads``
replicas of the molecule (the example structure stored in the model file; ``painn-ethanol``'s
is an rMD17 ethanol frame) joined by harmonic springs, at 300 K with a PILE-L thermostat and
0.5 fs steps. It asks for the forces of every bead through a UNIX socket, and ``--clients``
processes answer, each an ASE ``SocketClient`` running :class:`eqff.EqffCalculator`; i-PI
spreads the beads of each step over the clients. The same clients could serve i-PI from other
machines through an inet socket (``SocketClient(host=..., port=...)``). Files go to ``--output``
(default ``md_output/``): i-PI's input ``ipi_pimd.xml``, the starting structure, and its
properties ``ipi_pimd.out`` (step, time, conserved quantity, temperature, potential energy),
which the summary reads::

    python md_examples/ipi_pimd.py --steps 200

The run stops by itself after ``--steps`` steps: i-PI then tells the clients to exit.
"""

import argparse
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.calculators.socketio import SocketClient
from ase.io import read, write

from eqff.cli import reports_bad_input
from eqff.commands.md import starting_structure
from eqff.integrations.ase import EqffCalculator
from eqff.md.simulation import speed_line
from eqff.threads import THREADS_HELP

TIMESTEP = 0.5  # fs
TEMPERATURE = 300.0  # K
BOX = 30.0  # Å: i-PI needs a cell; the molecule is not periodic, and the clients ignore it
PROPERTIES = "step, time{picosecond}, conserved{electronvolt}, temperature{kelvin}, potential{electronvolt}"

IPI_INPUT = """<simulation verbosity='low'>
  <output prefix='ipi_pimd'>
    <properties stride='{stride}' filename='out'> [ {properties} ] </properties>
  </output>
  <total_steps>{steps}</total_steps>
  <prng><seed>{seed}</seed></prng>
  <ffsocket name='eqff' mode='unix'><address>{address}</address><latency>1e-4</latency></ffsocket>
  <system>
    <initialize nbeads='{beads}'>
      <file mode='xyz'>{structure}</file>
      <velocities mode='thermal' units='kelvin'>{temperature}</velocities>
    </initialize>
    <forces><force forcefield='eqff'/></forces>
    <ensemble><temperature units='kelvin'>{temperature}</temperature></ensemble>
    <motion mode='dynamics'>
      <dynamics mode='nvt'>
        <timestep units='femtosecond'>{timestep}</timestep>
        <thermostat mode='pile_l'><tau units='femtosecond'>100</tau></thermostat>
      </dynamics>
    </motion>
  </system>
</simulation>
"""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="painn-ethanol", help="model file or shipped potential (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=200, help="i-PI steps of 0.5 fs (default: %(default)s)")
    parser.add_argument("--beads", type=int, default=8, help="replicas of the ring polymer (default: %(default)s)")
    parser.add_argument("--clients", type=int, default=2, help="eqff client processes (default: %(default)s)")
    parser.add_argument("--interval", type=int, default=10, help="steps between recorded properties (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="i-PI's random seed (default: %(default)s)")
    parser.add_argument("--output", type=Path, default=Path("md_output"), help="folder for the files (default: %(default)s)")
    parser.add_argument("--timeout", type=float, default=3600.0, help="s before the run is stopped (default: %(default)s)")
    parser.add_argument("--threads", type=int, help=THREADS_HELP)
    parser.add_argument("--client", metavar="ADDRESS", help=argparse.SUPPRESS)  # run one client, as the example does
    return parser.parse_args(argv)


def write_structure(atoms: Atoms, path: Path) -> None:
    """``atoms`` in i-PI's extended XYZ: the cell and units in the comment line, in Å."""
    comment = f"# CELL(abcABC): {BOX} {BOX} {BOX} 90.0 90.0 90.0 cell{{angstrom}} positions{{angstrom}}"
    lines = [str(len(atoms)), comment]
    lines += [f"{symbol} {x:.10f} {y:.10f} {z:.10f}" for symbol, (x, y, z) in zip(atoms.get_chemical_symbols(), atoms.positions)]
    path.write_text("\n".join(lines) + "\n")


def run_client(address: str, structure: Path, model: str, threads: int | None) -> None:
    """Answer i-PI's force requests with eqff until i-PI says the run is over."""
    atoms = read(structure)
    atoms.pbc = False
    atoms.calc = EqffCalculator(model, threads=threads)
    SocketClient(unixsocket=address).run(atoms)


def socket_path(address: str) -> Path:
    """Where i-PI and ASE put a UNIX socket named ``address``."""
    return Path("/tmp") / f"ipi_{address}"


def wait_for(path: Path, server: subprocess.Popen, timeout: float) -> None:
    """Wait until i-PI has opened its socket, or raise if it exited or ``timeout`` s passed."""
    start = time.monotonic()
    while not path.exists():
        if server.poll() is not None:
            raise SystemExit(f"error: i-PI exited with status {server.returncode} before opening its socket")
        if time.monotonic() - start > timeout:
            raise SystemExit(f"error: i-PI did not open {path} within {timeout:g} s")
        time.sleep(0.1)


def summary(properties: Path, beads: int, wall: float, steps: int) -> None:
    """Print what the run gave: speed, temperature and potential energy of the ring polymer."""
    step, time_ps, conserved, temperature, potential = np.loadtxt(properties, ndmin=2).T
    print("summary")
    print(speed_line(steps, TIMESTEP, wall))
    print(f"  beads               {beads}, {beads * (steps + 1)} force calls")
    print(f"  temperature         mean {temperature.mean():.1f} K (ring polymer's estimator)")
    print(f"  potential energy    {potential.min():.4f} to {potential.max():.4f} eV (bead mean)")
    print(f"  conserved quantity  {conserved[0]:.4f} → {conserved[-1]:.4f} eV over {time_ps[-1]:.4f} ps")
    print(f"  properties          {properties} ({len(step)} rows)")


@reports_bad_input
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    structure = args.output / "ipi_pimd_start.xyz"
    if args.client:
        run_client(args.client, structure, args.model, args.threads)
        return 0
    args.output.mkdir(parents=True, exist_ok=True)
    write_structure(starting_structure(args.model, None), structure)
    address = f"eqff-{uuid.uuid4().hex[:8]}"
    (args.output / "ipi_pimd.xml").write_text(IPI_INPUT.format(
        stride=args.interval, properties=PROPERTIES, steps=args.steps, seed=args.seed, address=address,
        beads=args.beads, structure=structure.name, temperature=TEMPERATURE, timestep=TIMESTEP,
    ))  # fmt: skip
    print(f"i-PI path-integral MD: {args.beads} beads, {args.steps} steps of {TIMESTEP:g} fs at {TEMPERATURE:g} K, "
          f"{args.clients} eqff clients ({args.model}) on the UNIX socket {socket_path(address)}", flush=True)
    start = time.perf_counter()
    with open(args.output / "ipi_pimd.log", "w") as log:
        server = subprocess.Popen(["i-pi", "ipi_pimd.xml"], cwd=args.output, stdout=log, stderr=subprocess.STDOUT)
    clients: list[subprocess.Popen] = []
    try:
        wait_for(socket_path(address), server, timeout=60.0)
        client_command = [sys.executable, __file__, "--client", address, "--model", args.model, "--output", str(args.output)]
        if args.threads:
            client_command += ["--threads", str(args.threads)]
        clients = [subprocess.Popen(client_command, env=os.environ.copy()) for _ in range(args.clients)]
        server.wait(timeout=args.timeout)
        for client in clients:
            client.wait(timeout=60.0)
    except subprocess.TimeoutExpired:
        raise SystemExit(f"error: the run did not end within {args.timeout:g} s; see {args.output / 'ipi_pimd.log'}") from None
    finally:
        for process in [server, *clients]:
            if process.poll() is None:
                process.kill()
    if server.returncode != 0:
        raise SystemExit(f"error: i-PI ended with status {server.returncode}; see {args.output / 'ipi_pimd.log'}")
    summary(args.output / "ipi_pimd.out", args.beads, time.perf_counter() - start, args.steps)
    return 0


if __name__ == "__main__":
    sys.exit(main())
