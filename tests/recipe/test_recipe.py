"""Recipes: the shipped catalogs validate; malformed and out-of-range ones fail naming the field."""

from __future__ import annotations

import pytest

from datagen.errors import RecipeError
from datagen.recipe import catalog_entries, load_recipe, load_recipe_file, parse_recipe


def test_shipped_catalogs_validate():
    entries = catalog_entries()
    assert {"pattern-demo", "pattern-v1"} <= set(entries)
    for name, path in entries.items():
        recipe = load_recipe_file(path)
        assert recipe.name == name
    v1 = load_recipe("pattern-v1")
    assert v1.classes == {"amorphous": 1000, "monocrystalline": 1000, "polycrystalline": 1000}
    assert v1.pattern.frequency == (0.05, 0.55)


@pytest.mark.parametrize("change, message", [
    ({"seed": -1}, r"seed: Input should be greater than or equal to 0 \(got -1\)"),
    ({"colour": "red"}, r"colour: Extra inputs are not permitted"),
    ({"version": "one"}, r"version: String should match pattern"),
    ({"classes": {"amorphous": 0}}, r"classes: at least one sample"),
    ({"classes": {"crystalline": 3}}, r"classes\.crystalline"),
    ({"split": {"train": 0.5, "val": 0.2, "test": 0.2}}, r"split: .*must be 1"),
    ({"pattern": {"frequency": [0.05, 4.0]}}, r"pattern\.frequency\.1: Input should be less than or equal to 3\.1416"),
    ({"pattern": {"frequency": [0.5, 0.1]}}, r"pattern: .*frequency: range \[0\.5, 0\.1\] has low > high"),
    ({"pattern": {"image_size": 64, "diameter_px": [20, 80]}}, r"diameter_px: high end 80.* exceeds image_size 64"),
    ({"pattern": {"contrast": "strong"}}, r"pattern\.contrast"),
    ({"generator": "holography"}, r"generator|holography"),
    ({"chunk_size": 0}, r"chunk_size: Input should be greater than or equal to 1"),
])
def test_bad_values_name_the_field(tiny_dict, change, message):
    with pytest.raises(RecipeError, match=message):
        parse_recipe({**tiny_dict, **change}, "tiny.yaml")


def test_missing_required_field(tiny_dict):
    del tiny_dict["seed"]
    with pytest.raises(RecipeError, match=r"^tiny\.yaml: seed: Field required$"):
        parse_recipe(tiny_dict, "tiny.yaml")


def test_malformed_yaml_and_name_mismatch(tmp_path, tiny_dict, write_recipe):
    bad = tmp_path / "broken.yaml"
    bad.write_text("name: broken\nclasses: {amorphous: 3\n")
    with pytest.raises(RecipeError, match=r"broken\.yaml: not valid YAML at line \d"):
        load_recipe_file(bad)
    path = write_recipe(tiny_dict, name="other")
    with pytest.raises(RecipeError, match=r"name: 'tiny' must equal the file name 'other'"):
        load_recipe_file(path)
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(RecipeError, match="a recipe must be a mapping, got list"):
        load_recipe_file(tmp_path / "list.yaml")


def test_unknown_entry_lists_known_ones():
    with pytest.raises(RecipeError, match=r"unknown catalog entry 'nope' \(known: .*pattern-demo"):
        load_recipe("nope")


def test_recipe_hash_changes_with_content(tiny_dict):
    a = parse_recipe(tiny_dict)
    b = parse_recipe({**tiny_dict, "seed": 8})
    assert a.sha256() == parse_recipe(dict(tiny_dict)).sha256() != b.sha256()


def test_hostile_and_loose_recipe_files_are_refused_in_one_line(tmp_path, tiny_dict, write_recipe):
    import time

    from datagen.recipe.catalog import MAX_RECIPE_BYTES

    # a "billion laughs" file: nested aliases would expand to ~10^9 items; refused before any expansion
    bomb = tmp_path / "tiny.yaml"
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    bomb.write_text("\n".join(lines) + "\ndescription: *a8\n")
    t0 = time.perf_counter()
    with pytest.raises(RecipeError, match=r"aliases \(\*a0\) are not allowed in recipes"):
        load_recipe_file(bomb)
    assert time.perf_counter() - t0 < 5
    big = tmp_path / "big.yaml"
    big.write_text("# " + "x" * MAX_RECIPE_BYTES + "\n")
    with pytest.raises(RecipeError, match=rf"big.yaml: {MAX_RECIPE_BYTES + 3} bytes, more than a recipe's"):
        load_recipe_file(big)
    # strict types: a quoted number, a number for a flag, a fraction for a count
    for change, message in (({"seed": "7"}, r"seed: Input should be a valid integer \(got '7'\)"),
                            ({"chunk_size": 4.0}, r"chunk_size: Input should be a valid integer"),
                            ({"pattern": {"image_size": "48"}}, r"pattern.image_size: Input should be a valid integer")):
        with pytest.raises(RecipeError, match=message):
            load_recipe_file(write_recipe({**tiny_dict, **change}))
    sim = {**tiny_dict, "generator": "simulation", "simulation": {"optics": {"voltage_kv": "300"}}}
    sim.pop("pattern")
    with pytest.raises(RecipeError, match=r"simulation.optics.voltage_kv: Input should be a valid number \(got '300'\)"):
        load_recipe_file(write_recipe(sim))
