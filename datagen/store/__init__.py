"""The dataset store: its schema (``schema``), the zarr store that writes, verifies and reads it
(``zarrstore``), and the check of a build against a catalog entry's reference (``reference``).

Readers use :func:`open_samples`, :func:`open_atoms` and :func:`read_atoms`.
"""

from datagen.store.schema import CLASS_NAMES, PART_NAMES, SPLIT_NAMES, Layout, Variable, core_variables
from datagen.store.zarrstore import (STORE_SCHEMA_VERSION, Store, VerifyReport, create_or_open, dataset_attributes,
                                     open_atoms, open_samples, read_atoms)

__all__ = ["CLASS_NAMES", "PART_NAMES", "SPLIT_NAMES", "STORE_SCHEMA_VERSION", "Layout", "Store", "Variable",
           "VerifyReport", "core_variables", "create_or_open", "dataset_attributes", "open_atoms",
           "open_samples", "read_atoms"]
