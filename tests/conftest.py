"""Shared fixtures: tiny recipes that generate in well under a second."""

from __future__ import annotations

import copy

import pytest
import yaml

TINY = {
    "format": 1,
    "name": "tiny",
    "version": "1.0.0",
    "description": "tiny pattern recipe for tests",
    "generator": "pattern",
    "seed": 7,
    "chunk_size": 4,
    "classes": {"amorphous": 6, "monocrystalline": 5, "polycrystalline": 7},
    "pattern": {"image_size": 48, "diameter_px": [20, 40]},
}


@pytest.fixture
def tiny_dict():
    return copy.deepcopy(TINY)


@pytest.fixture
def tiny_recipe(tiny_dict):
    from datagen.recipe import parse_recipe

    return parse_recipe(tiny_dict)


@pytest.fixture
def write_recipe(tmp_path):
    """Write a recipe dict to ``tmp_path/<name>.yaml`` and return the path."""

    def write(data: dict, name: str | None = None):
        path = tmp_path / f"{name or data['name']}.yaml"
        path.write_text(yaml.safe_dump(data))
        return path

    return write


@pytest.fixture(scope="module")
def one_torch_thread():
    """Small tensors: one intra-op thread, so OpenMP spin-waits on a busy shared machine cannot stall them."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
