"""The PNG plots of ``eqff report``: NVE energy, NVT h(r) and bond deviations, speed."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from eqff.report.measurements import NVEResult, NVTResult  # noqa: E402
from eqff.md.observables import STABILITY_THRESHOLD  # noqa: E402


def plot_nve(path: Path, results: dict[str, NVEResult]) -> None:
    """Total energy change (meV/atom) against time (ps), one line per model."""
    figure, axes = plt.subplots(figsize=(7, 4))
    for name, result in results.items():
        axes.plot(result.time_ps, result.total_energy, label=f"{name} ({result.drift:+.4f} meV/atom/ps)")
    axes.set_xlabel("time / ps")
    axes.set_ylabel("total energy change / meV/atom")
    axes.set_title("NVE, float64, 0.5 fs")
    axes.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def plot_nvt(path: Path, results: dict[str, NVTResult]) -> None:
    """One column per model: h(r) against the rMD17 reference (top), largest bond deviation against time (bottom)."""
    figure, axes = plt.subplots(2, len(results), figsize=(4 * len(results), 6), squeeze=False)
    for column, (name, result) in enumerate(results.items()):
        top, bottom = axes[0, column], axes[1, column]
        top.plot(result.r, result.h_reference, label="rMD17")
        top.plot(result.r, result.h, "--", label=f"MD (h(r) MAE {result.hr_mae:.3f})")
        top.set_title(name)
        top.set_xlabel("r / Å")
        top.set_ylabel("h(r) / Å⁻¹")
        top.legend(fontsize="small")
        bottom.plot(result.time_ps, result.bond_deviation)
        bottom.axhline(STABILITY_THRESHOLD, color="k", linestyle=":")
        bottom.set_xlabel("time / ps")
        bottom.set_ylabel("largest bond deviation / Å")
    figure.suptitle("NVT at 500 K, float32, 0.5 fs")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def plot_speed(path: Path, speeds: dict[str, dict[str, float]]) -> None:
    """ms per call (log scale) of each model or peer (``speeds[name][system]``), grouped by system."""
    names = list(speeds)
    systems = sorted({system for row in speeds.values() for system in row})
    figure, axes = plt.subplots(figsize=(max(6, 1.2 * len(names) * len(systems)), 4))
    width = 0.8 / len(names)
    for index, name in enumerate(names):
        values = [speeds[name].get(system, np.nan) for system in systems]
        axes.bar(np.arange(len(systems)) + index * width, values, width, label=name)
    axes.set_xticks(np.arange(len(systems)) + 0.4 - width / 2, systems)
    axes.set_yscale("log")
    axes.set_ylabel("ms per energy + forces call")
    axes.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
