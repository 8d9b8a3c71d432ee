"""Fit the defocus of the real amorphous-carbon images from their Thon rings, with our CTF.

Data: ../shared/data/amorphous_carbon_thon_rings/img_{1,2,50}.raw (512 × 512 uint16, 0.135355 nm/px,
about 475 nm underfocus). The voltage was not recorded: 300 kV is assumed (the MTF file beside the
images is for 300 keV). Cs is fixed at 0 (an aberration-corrected instrument; fitting it as well is
reported as a check). Writes benchmarks/results/thon_rings.json and docs/figures/thon_rings.png.

    python benchmarks/thon_rings.py [--data DIR]
"""

from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from datagen.simulate.ctf import ctf_zeros  # noqa: E402
from datagen.simulate.thon import fit_thon_rings, power_spectrum, read_raw_image  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "amorphous_carbon_thon_rings"
IMAGES = ("img_1", "img_2", "img_50")
PIXEL_NM = 0.135355
VOLTAGE_KV = 300.0


def fit_all(data: Path) -> dict:
    results = {}
    for name in IMAGES:
        image = read_raw_image(data / f"{name}.raw")
        fit = fit_thon_rings(image, PIXEL_NM, VOLTAGE_KV)
        free = fit_thon_rings(image, PIXEL_NM, VOLTAGE_KV, fit_cs=True)
        results[name] = dict(
            fit=fit, image=image,
            record=dict(
                defocus_nm=round(fit.defocus_nm, 2), astig_x_nm=round(fit.astig_x_nm, 2),
                astig_y_nm=round(fit.astig_y_nm, 2), cs_um=fit.cs_um, phase_shift_rad=round(fit.phase_shift, 4),
                rms_minima_inv_nm=round(fit.rms_minima_nm, 5), n_matched=fit.n_matched,
                n_predicted=len(fit.predicted_minima),
                predicted_minima_inv_nm=[round(v, 4) for v in fit.matched[:, 0]],
                measured_minima_inv_nm=[round(v, 4) for v in fit.matched[:, 1]],
                with_cs_free=dict(defocus_nm=round(free.defocus_nm, 2), cs_um=round(free.cs_um, 1),
                                  rms_minima_inv_nm=round(free.rms_minima_nm, 5), n_matched=free.n_matched),
            ))
    return results


def zero_rings(fit, n_angles: int = 361) -> list[tuple[np.ndarray, np.ndarray]]:
    """(θ, k [1/nm]) of each CTF zero ring over the right half plane, with astigmatism:
    C1(θ) = C1 + a1x·cos 2θ + a1y·sin 2θ."""
    theta = np.linspace(-math.pi / 2, math.pi / 2, n_angles)
    local = fit.defocus_nm + fit.astig_x_nm * np.cos(2 * theta) + fit.astig_y_nm * np.sin(2 * theta)
    k_max = 0.5 / PIXEL_NM / 10
    per_angle = [ctf_zeros(VOLTAGE_KV, c1, fit.cs_um, k_max, fit.phase_shift) * 10 for c1 in local]
    n = min(len(z) for z in per_angle)
    return [(theta, np.array([z[i] for z in per_angle])) for i in range(n) if per_angle[0][i] >= 0.5]


def figure(results: dict, path: Path) -> None:
    fig = plt.figure(figsize=(11, 6.2))
    grid = fig.add_gridspec(len(IMAGES), 2, width_ratios=(1, 1.5))
    first = results[IMAGES[0]]
    spectrum = np.fft.fftshift(power_spectrum(first["image"]))
    spectrum = spectrum.reshape(spectrum.shape[0] // 2, 2, spectrum.shape[1] // 2, 2).mean(axis=(1, 3))
    half = 0.5 / PIXEL_NM
    ax = fig.add_subplot(grid[:, 0])
    log_ps = np.log(spectrum + 1e-3)
    ax.imshow(log_ps, cmap="gray", extent=(-half, half, half, -half), vmin=np.percentile(log_ps, 2),
              vmax=np.percentile(log_ps, 99.7), interpolation="nearest")
    for theta, k in zero_rings(first["fit"]):
        ax.plot(k * np.cos(theta), k * np.sin(theta), color="tab:orange", lw=0.6)
    ax.set(xlabel="kx [1/nm]", ylabel="ky [1/nm]", title=f"{IMAGES[0]}: power spectrum, fitted zeros (right)")
    for row, name in enumerate(IMAGES):
        fit = results[name]["fit"]
        ax = fig.add_subplot(grid[row, 1])
        ax.plot(fit.k_nm, fit.profile, lw=0.8, color="tab:blue", label="measured (log PS − background)")
        ax.plot(fit.k_nm, fit.model, lw=0.8, color="tab:orange", label="fitted CTF² (damped)")
        ax.plot(fit.matched[:, 1], np.interp(fit.matched[:, 1], fit.k_nm, fit.profile), "kv", ms=4,
                label="measured minima")
        for k in fit.predicted_minima:
            ax.axvline(k, color="tab:red", lw=0.5, alpha=0.6)
        ax.set_title(f"{name}: C1 = {fit.defocus_nm:.1f} nm, |A1| = {math.hypot(fit.astig_x_nm, fit.astig_y_nm):.1f}"
                     f" nm, minima RMS {fit.rms_minima_nm:.4f} 1/nm ({fit.n_matched} rings)", fontsize=9)
        ax.set_xlim(fit.k_nm[0], fit.k_nm[-1])
        if row == 0:
            fig.legend(*ax.get_legend_handles_labels(), fontsize=8, loc="lower left", ncol=3)
        if row == len(IMAGES) - 1:
            ax.set_xlabel("k [1/nm] (red: predicted zeros of sin(χ − φ))")
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder with img_*.raw")
    args = parser.parse_args()
    results = fit_all(args.data)
    print(f"{'image':8s} {'C1 [nm]':>9s} {'a1x [nm]':>9s} {'a1y [nm]':>9s} {'RMS minima [1/nm]':>18s} "
          f"{'rings matched':>14s} {'C1, Cs free [nm, µm]':>22s}")
    for name in IMAGES:
        r = results[name]["record"]
        free = r["with_cs_free"]
        print(f"{name:8s} {r['defocus_nm']:9.1f} {r['astig_x_nm']:9.1f} {r['astig_y_nm']:9.1f} "
              f"{r['rms_minima_inv_nm']:18.4f} {r['n_matched']:>7d} / {r['n_predicted']:<4d} "
              f"{free['defocus_nm']:12.1f}, {free['cs_um']:7.0f}")
    out = dict(
        data=os.path.relpath(args.data, ROOT), pixel_size_nm=PIXEL_NM, voltage_kv=VOLTAGE_KV,
        assumptions="voltage not recorded: 300 kV assumed (MTF file for 300 keV); Cs fixed at 0 um; "
                    "defocus sign taken as underfocus (Thon rings at Cs=0 do not fix it)",
        method="datagen.simulate.thon.fit_thon_rings: log radial power spectrum vs u=k^2, coarse least-squares "
               "search, 12-sector astigmatism, demodulation refinement; zeros from datagen.simulate.ctf",
        images={name: results[name]["record"] for name in IMAGES},
    )
    json_path = ROOT / "benchmarks" / "results" / "thon_rings.json"
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(out, indent=2) + "\n")
    figure(results, ROOT / "docs" / "figures" / "thon_rings.png")
    print(f"wrote {json_path.relative_to(ROOT)} and docs/figures/thon_rings.png")


if __name__ == "__main__":
    main()
