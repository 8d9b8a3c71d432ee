"""datagen: labelled simulated-HRTEM datasets of metal nanoparticles.

Units used throughout (stated once here, repeated in every docstring):
lengths of atomic models in Å (as ase), optical parameters in nm (as the paper),
angles in mrad, voltages in kV, doses in e-/Å².
"""

import os

# MKL (behind torch's CPU FFTs) picks code paths by buffer alignment and CPU, so the same sample
# could differ in the last bits between processes. Conditional Numerical Reproducibility fixes the
# path: a dataset's content then depends on neither worker count nor process history nor the CPU
# model (measured: no slower here). Set before torch loads MKL; a value the user set is kept.
os.environ.setdefault("MKL_CBWR", "COMPATIBLE")

from datagen._version import __version__  # noqa: E402

__all__ = ["__version__"]
