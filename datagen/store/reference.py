"""Reference builds: whether a store is a catalog entry's reference build, bit for bit, within numerical
noise (other library versions, another CPU, a GPU) or not at all; and what the last bits of a build
depend on besides its recipe."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from datagen.errors import StoreError
from datagen.recipe.catalog import catalog_dirs, load_recipe_file, parse_recipe_text
from datagen.store.fingerprint import (VariableDifference, compare_fingerprints, compute_fingerprint, read_fingerprint,
                                      write_fingerprint)
from datagen.store.zarrstore import Store


def software_environment() -> dict:
    """What the last bits of a CPU build depend on besides the recipe: the machine's architecture,
    torch's CPU kernel set (AVX2 and AVX-512 give the same bytes, tested; unvectorised or ARM kernels
    do not), and the numerical libraries' versions."""
    return {"machine": platform.machine(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "torch": torch.__version__, "numpy": np.__version__}


def _flatten(d, prefix: str = "") -> dict:
    if not isinstance(d, dict):
        return {prefix: d}
    out = {}
    for k, v in d.items():
        out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def recipe_differences(stored: dict, recipe: dict) -> list[str]:
    """The recipe fields (dotted paths) whose values differ between two recipes' JSON dicts."""
    a, b = _flatten(stored), _flatten(recipe)
    return [f"{k} ({a.get(k)!r} here, {b.get(k)!r} in the entry)" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


@dataclass
class ReferenceCheck:
    """How a build compares with a catalog entry's reference build.

    status : "identical" (the same bytes), "noise" (the same dataset within numerical noise: other
        library versions, another CPU, a GPU) or "different" (other content).
    """

    status: str
    entry: str
    device_class: str
    content: str
    reference: str | None
    differences: list[VariableDifference] = field(default_factory=list)
    recipe: list[str] = field(default_factory=list)
    environments: tuple[str, str] = ("", "")

    @property
    def ok(self) -> bool:
        return self.status in ("identical", "noise")

    def summary(self) -> str:
        if self.status == "identical":
            return f"bit-identical to the {self.device_class} reference build of {self.entry} (content sha256 {self.content})"
        if self.status == "noise":
            largest = ", ".join(f"{d.name} {d.max_relative:.2g}" for d in self.differences if not d.exact) or "none, every number is equal"
            software = [d.name for d in self.differences if d.exact]
            if software:
                largest += f" (software recorded in {', '.join(software)} differs)"
            return (f"the same dataset as the reference build of {self.entry} within numerical noise "
                    f"(content sha256 {self.content[:16]}… vs {str(self.reference)[:16]}…); largest relative "
                    f"differences: {largest}; this build: {self.environments[0]}; reference: {self.environments[1]}")
        if self.recipe:
            shown = "; ".join(self.recipe[:3]) + (f"; +{len(self.recipe) - 3} more" if len(self.recipe) > 3 else "")
            where = f"the recipe differs: {shown}"
        else:
            where = ""
        beyond = [d for d in self.differences if d.samples]
        if beyond:
            first = min(d.samples[0] for d in beyond)
            names = [d.name for d in beyond if first in d.samples]
            detail = (f"sample {first} differs in {', '.join(names[:6])}; {len(beyond)} variables differ beyond "
                      f"noise (" + ", ".join(f"{d.name}: {len(d.samples)} samples" for d in beyond[:6]) + ")")
            where = f"{where}; {detail}" if where else detail
        return f"different content from the reference build of {self.entry}: {where}"


def fingerprint_file(recipe, device_class: str) -> Path | None:
    """The shipped fingerprint of the entry's reference build on ``device_class``, if any:
    ``fingerprints/NAME-VERSION-CLASS.npz`` in a catalog folder."""
    for folder in catalog_dirs():
        candidate = folder / "fingerprints" / f"{recipe.name}-{recipe.version}-{device_class}.npz"
        if candidate.is_file():
            return candidate
    return None


def _environment(generation: dict) -> str:
    keys = ("device", "machine", "cpu_capability", "torch", "numpy")
    return ", ".join(f"{k} {generation[k]}" for k in keys if k in generation) or "unknown"


def _verified_build(store: Store) -> tuple[str, dict, str]:
    """(content hash, generation record, device class "cpu" or "cuda") of a store that verifies and is
    complete; StoreError otherwise."""
    report = store.verify()
    if not report.ok:
        raise StoreError(f"{store.path}: {report.summary()}")
    generation = store.attrs.get("generation") or {}
    return store.content_sha256(), generation, "cpu" if generation.get("device", "cpu") == "cpu" else "cuda"


def check_reference(path: str | Path, recipe) -> ReferenceCheck:
    """Compare the store at ``path`` with catalog entry ``recipe``'s reference build.

    The store must hold the entry (name and version), verify chunk by chunk and be complete (else
    StoreError). Its content hash is compared with the reference recorded for its device class (CPU or
    CUDA); when they differ, its fingerprint is compared with the one shipped beside the entry
    (``fingerprint_file``), to tell numerical noise from different content. Without a shipped
    fingerprint a differing hash cannot be judged: StoreError says so.
    """
    store = Store.open(path, mode="r")
    a = store.attrs
    entry = f"{recipe.name} {recipe.version}"
    if (a.get("catalog_name"), a.get("catalog_version")) != (recipe.name, recipe.version):
        raise StoreError(f"{path} holds {a.get('catalog_name')} {a.get('catalog_version')}, not {entry}")
    content, generation, device_class = _verified_build(store)
    reference = recipe.reference_for(device_class) or recipe.reference_for("cpu")
    same_recipe = a.get("recipe_sha256") == recipe.sha256()
    changed = [] if same_recipe else recipe_differences(store.recipe, recipe.to_json_dict())
    if not changed and content == recipe.reference_for(device_class):
        return ReferenceCheck("identical", entry, device_class, content, content)
    shipped = fingerprint_file(recipe, device_class) or fingerprint_file(recipe, "cpu")
    if shipped is None:
        if changed:
            return ReferenceCheck("different", entry, device_class, content, reference, recipe=changed)
        if reference is None:
            raise StoreError(f"catalog entry {entry} records no reference build for {device_class} builds "
                             f"(reference_content_sha256); this build's content sha256 is {content}")
        raise StoreError(f"{path}: content sha256 {content[:16]}… differs from the {device_class} reference build of "
                         f"{entry} ({reference[:16]}…), and the entry ships no fingerprint to tell numerical noise from "
                         f"different content; this build: {_environment(generation)}")
    reference_arrays, meta = read_fingerprint(shipped)
    differences = compare_fingerprints(compute_fingerprint(path), reference_arrays)
    beyond = any(d.samples for d in differences)
    status = "different" if changed or beyond else "noise"
    return ReferenceCheck(status, entry, device_class, content, meta.get("content_sha256", reference), differences,
                          changed, (_environment(generation), _environment(meta.get("generation") or {})))


def check_against(path: str | Path, recipe) -> ReferenceCheck:
    """:func:`check_reference`, raising StoreError (its summary) unless the build is the reference's,
    bit for bit or within numerical noise."""
    result = check_reference(path, recipe)
    if not result.ok:
        raise StoreError(f"{path}: {result.summary()}")
    return result


def _set_reference_line(text: str, device_class: str, content: str) -> str:
    """The recipe file's text with its reference hash for ``device_class`` set to ``content``: a scalar
    (any device) is replaced in place, a per-device mapping gets or replaces its line; comments stay."""
    lines = text.splitlines(keepends=True)
    key = "reference_content_sha256:"
    at = next((i for i, line in enumerate(lines) if line.startswith(key)), None)
    if at is None:
        return text + ("" if text.endswith("\n") else "\n") + f"{key}\n  {device_class}: {content}\n"
    rest = lines[at][len(key):].strip()
    if rest and not rest.startswith("#"):  # one hash for any device
        lines[at] = f"{key} {content}\n"
        return "".join(lines)
    end = at + 1
    while end < len(lines) and lines[end].startswith((" ", "\t")):
        end += 1
    block = [line for line in lines[at + 1:end] if not line.strip().startswith(f"{device_class}:")]
    indent = (block[0][:len(block[0]) - len(block[0].lstrip())] if block else "  ")
    return "".join(lines[:at + 1] + block + [f"{indent}{device_class}: {content}\n"] + lines[end:])


def record_reference(path: str | Path, recipe_file: str | Path, *, force: bool = False) -> tuple[str, Path]:
    """Make the complete store at ``path`` the reference build of the catalog entry in ``recipe_file``:
    write its fingerprint to ``fingerprints/NAME-VERSION-CLASS.npz`` beside the file and its content hash
    into the file (``reference_content_sha256``), both atomically. An existing, different reference is
    replaced only with ``force``. Returns (content hash, fingerprint path)."""
    recipe_file = Path(recipe_file)
    recipe = load_recipe_file(recipe_file)
    store = Store.open(path, mode="r")
    a = store.attrs
    if (a.get("catalog_name"), a.get("catalog_version"), a.get("recipe_sha256")) != (
            recipe.name, recipe.version, recipe.sha256()):
        raise StoreError(f"{path} is not a build of {recipe_file} ({a.get('catalog_name')} {a.get('catalog_version')}, "
                         f"recipe sha256 {str(a.get('recipe_sha256'))[:12]} vs {recipe.sha256()[:12]})")
    content, generation, device_class = _verified_build(store)
    old = recipe.reference_for(device_class)
    out = recipe_file.parent / "fingerprints" / f"{recipe.name}-{recipe.version}-{device_class}.npz"
    if not force and ((old is not None and old != content) or out.exists()):
        raise StoreError(f"{recipe_file} already records a {device_class} reference build "
                         f"({(old or 'a fingerprint')[:16]}…); pass --force to replace it")
    meta = {"entry": recipe.name, "version": recipe.version, "device_class": device_class,
            "content_sha256": content, "recipe_sha256": recipe.sha256(), "source": a.get("source"),
            "generation": {k: generation[k] for k in ("device", "machine", "cpu_capability", "torch", "numpy")
                           if k in generation}}
    write_fingerprint(path, out, meta)
    updated = _set_reference_line(recipe_file.read_text(), device_class, content)
    check = parse_recipe_text(updated, recipe_file)
    if check.sha256() != recipe.sha256() or check.reference_for(device_class) != content:
        raise StoreError(f"{recipe_file}: the reference line could not be written safely; edit it by hand")
    tmp = recipe_file.with_name(f".{recipe_file.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(updated)
        os.replace(tmp, recipe_file)
    finally:
        tmp.unlink(missing_ok=True)
    return content, out
