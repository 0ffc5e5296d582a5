"""Data: frames in eqff's internal units (Å, eV), readers, graphs and unit factors."""

from eqff.data.extxyz import read_extxyz
from eqff.data.frames import Frame
from eqff.data.md17 import MOLECULES, data_root, read_md17, read_rmd17, read_sgdml_npz

__all__ = ["Frame", "MOLECULES", "data_root", "read_extxyz", "read_md17", "read_rmd17", "read_sgdml_npz"]
