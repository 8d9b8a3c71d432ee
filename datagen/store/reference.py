"""Reference builds: whether a store is a faithful rebuild of a catalog entry, and what the last bits of a
build depend on besides its recipe."""

from __future__ import annotations

import platform
from pathlib import Path

import numpy as np
import torch

from datagen.errors import StoreError
from datagen.store.zarrstore import Store


def software_environment() -> dict:
    """What the last bits of a CPU build depend on besides the recipe: the machine's architecture,
    torch's CPU kernel set (AVX2 and AVX-512 give the same bytes, tested; unvectorised or ARM kernels
    do not), and the numerical libraries' versions."""
    return {"machine": platform.machine(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "torch": torch.__version__, "numpy": np.__version__}


def check_against(path: str | Path, recipe) -> str:
    """Check that the store at ``path`` is a faithful build of catalog entry ``recipe``.

    The store must hold the same recipe (name, version and recipe hash), verify chunk by chunk, be
    complete, and have the content hash recorded for the entry's reference build on the same device
    class (the store's recorded generation device: CPU or CUDA). Returns the content hash; raises
    StoreError naming the first difference.
    """
    store = Store.open(path, mode="r")
    a = store.attrs
    if (a.get("catalog_name"), a.get("catalog_version")) != (recipe.name, recipe.version):
        raise StoreError(f"{path} holds {a.get('catalog_name')} {a.get('catalog_version')}, "
                         f"not {recipe.name} {recipe.version}")
    if a.get("recipe_sha256") != recipe.sha256():
        raise StoreError(f"{path} was made from another recipe than catalog entry {recipe.name} {recipe.version} "
                         f"(recipe sha256 {str(a.get('recipe_sha256'))[:12]} vs {recipe.sha256()[:12]})")
    report = store.verify()
    if not report.ok:
        raise StoreError(f"{path}: {report.summary()}")
    content = store.content_sha256()
    device = (a.get("generation") or {}).get("device", "cpu")
    device_class = "cpu" if device == "cpu" else "cuda"
    reference = recipe.reference_for(device_class)
    if reference is None:
        raise StoreError(f"catalog entry {recipe.name} {recipe.version} records no reference build for "
                         f"{device_class} builds (reference_content_sha256); this build's content sha256 is {content}")
    if content != reference:
        gen = a.get("generation") or {}
        env = ", ".join(f"{k} {gen[k]}" for k in ("machine", "cpu_capability", "torch", "numpy") if k in gen)
        hint = (f"; this build: {a.get('source', 'datagen ?')}, {env}. CPU references hold on x86-64 with AVX2 "
                f"or AVX-512 and the versions in the entry's comment" if device_class == "cpu" else "")
        raise StoreError(f"{path}: content sha256 {content[:16]}… differs from the {device_class} reference build "
                         f"of {recipe.name} {recipe.version} ({reference[:16]}…){hint}")
    return content
