"""Figure for the README: projected atomic models of each class on a support film.

    python docs/figures/structures.py   # writes docs/figures/structures.png

Each panel looks along the beam (+z) at one sample built by ``datagen.structures.build_sample``
(6 nm box, 2 nm film unless noted): the film as its projected atom density (grey), the particle's
atoms coloured by crystal domain (amorphous: brown). The last panel is a side view (x–z) of a
sample, beam from the top. The PNG is palette-quantised to stay small.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from datagen.structures import build_sample  # noqa: E402

OUT = Path(__file__).with_suffix(".png")
BOX = 60.0
PANELS = [
    ("monocrystalline", {"kind": "sphere", "diameter": 25.0}, 1),
    ("monocrystalline", {"kind": "truncated_octahedron", "diameter": 25.0}, 2),
    ("monocrystalline", {"kind": "cuboctahedron", "diameter": 22.0}, 3),
    ("monocrystalline", {"kind": "wulff", "element": "Pt", "diameter": 28.0}, 4),
    ("polycrystalline", {"kind": "stitched", "diameter": 28.0}, 5),
    ("polycrystalline", {"kind": "stitched", "diameter": 28.0}, 2),
    ("polycrystalline", {"kind": "icosahedron", "diameter": 25.0}, 7),
    ("polycrystalline", {"kind": "decahedron", "diameter": 28.0}, 8),
    ("amorphous", {"kind": "amorphous", "diameter": 25.0}, 9),
    ("amorphous", {"kind": "amorphous", "diameter": 20.0, "support_substitute": "Si"}, 10),
    ("amorphous", {"kind": "amorphous", "element": "Cu", "diameter": 30.0, "thickness": 10.0}, 11),
]
SIDE = ("side view (x–z)", {"kind": "decahedron", "diameter": 25.0, "thickness": 20.0}, 12)


def film_image(atoms, axes=(0, 1), bins=120) -> np.ndarray:
    """Projected number density of the film atoms on a grid over the box."""
    from scipy.ndimage import gaussian_filter

    film = atoms.positions[atoms.arrays["part"] == 0]
    h, _, _ = np.histogram2d(film[:, axes[0]], film[:, axes[1]], bins=bins, range=[[0, BOX], [0, BOX]])
    return gaussian_filter(h.T, 1.2, mode="wrap")


def draw(ax, atoms, title: str, axes=(0, 1)) -> None:
    img = film_image(atoms, axes)
    if img.any():
        ax.imshow(img, origin="lower", extent=(0, BOX, 0, BOX), cmap="Greys", vmin=0, vmax=img.max() * 1.6,
                  interpolation="bilinear")
    part = atoms.positions[atoms.arrays["part"] == 1]
    domain = atoms.arrays["domain"][atoms.arrays["part"] == 1]
    order = np.argsort(-part[:, 2] if axes == (0, 1) else part[:, 1])
    colours = plt.get_cmap("tab10")(domain[order] % 10)
    colours[domain[order] < 0] = matplotlib.colors.to_rgba("darkgoldenrod")
    ax.scatter(part[order, axes[0]], part[order, axes[1]], c=colours, s=4, linewidths=0.2, edgecolors="k")
    ax.set(xlim=(0, BOX), ylim=(0, BOX), xticks=[], yticks=[], aspect="equal")
    ax.set_title(title, fontsize=6.5, pad=2)


def main() -> None:
    fig, axs = plt.subplots(3, 4, figsize=(7.0, 5.9))
    for ax, (label, spec, seed) in zip(axs.ravel(), PANELS):
        atoms = build_sample(spec, np.random.default_rng(seed))
        info = atoms.info
        film = "no film" if info["support_element"] == "none" else f"{info['support_element']} film"
        draw(ax, atoms, f"{info['kind'].replace('_', ' ')}, {info['n_domains']} domain(s)\n"
                        f"{info['element']} {info['n_atoms']} atoms, {info['diameter'] / 10:.1f} nm, {film}")
    for ax, label in zip(axs[:, 0], ("monocrystalline", "polycrystalline", "amorphous")):
        ax.set_ylabel(label, fontsize=8)
    title, spec, seed = SIDE
    atoms = build_sample(spec, np.random.default_rng(seed))
    ax = axs.ravel()[-1]
    draw(ax, atoms, f"{title}, decahedron on C\nbeam (+z, down) hits particle first", axes=(0, 2))
    ax.invert_yaxis()
    fig.tight_layout(pad=0.3, h_pad=0.6, w_pad=0.3)
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=100)
    image = Image.open(buffer).convert("RGB").quantize(colors=96, method=Image.Quantize.FASTOCTREE)
    image.save(OUT, optimize=True)
    print(f"wrote {OUT} ({OUT.stat().st_size / 1024:.0f} kB)")


if __name__ == "__main__":
    main()
