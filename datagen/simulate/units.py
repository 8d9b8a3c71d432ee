"""Unit factors, written once. Atomic models and the simulation grid work in [Å] (as ase); recipes
and optics in [nm] (as the paper), Cs in [µm], angles in [mrad]. Multiply by a factor to get [Å]
(or [rad]): ``length_A = length_nm * NM``."""

NM = 10.0  # [Å] per [nm]
UM = 1e4  # [Å] per [µm]
MRAD = 1e-3  # [rad] per [mrad]
