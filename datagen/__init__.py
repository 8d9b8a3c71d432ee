"""datagen: labelled simulated-HRTEM datasets of metal nanoparticles.

Units used throughout (stated once here, repeated in every docstring):
lengths of atomic models in Å (as ase), optical parameters in nm (as the paper),
angles in mrad, voltages in kV, doses in e-/Å².
"""

from datagen._version import __version__

__all__ = ["__version__"]
