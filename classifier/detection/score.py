"""Detection against ground truth: matches at IoU > 0.5, recall, precision, pixel IoU, sizes, splits.

A detected region matches a true particle when their intersection over union exceeds 0.5 (each side then
has at most one match). Particles the detector is told to drop are left out of both counts: true particles
that reach within ``border_px`` of the image border (``exclude_border``: a detector drops what touches the
border, and its outline may be a pixel or two wider than the truth) and those smaller than
``min_diameter_nm`` (equivalent diameter of their visible footprint); a detection that overlaps such a
particle more than it overlaps any counted one counts neither way. The pixel IoU leaves out the pixels of
both.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from datagen.generators.mask import touching_pairs


@dataclass
class Score:
    """Counts over one or more images; ratios as properties."""

    true: int = 0  # true particles counted
    found: int = 0  # of those, matched
    detected: int = 0  # detections counted
    correct: int = 0  # of those, matched
    pixel_inter: int = 0
    pixel_union: int = 0
    diameter_ratio: list = field(default_factory=list)  # detected / true equivalent diameter, per match
    pairs: int = 0  # touching true pairs, both counted
    pairs_split: int = 0  # of those, both matched (so told apart)

    @property
    def recall(self) -> float:
        return self.found / self.true if self.true else float("nan")

    @property
    def precision(self) -> float:
        return self.correct / self.detected if self.detected else float("nan")

    @property
    def pixel_iou(self) -> float:
        return self.pixel_inter / self.pixel_union if self.pixel_union else float("nan")

    @property
    def diameter_error(self) -> float:
        """Median |d_detected / d_true - 1| over the matches."""
        return float(np.median(np.abs(np.asarray(self.diameter_ratio) - 1))) if self.diameter_ratio else float("nan")

    @property
    def diameter_bias(self) -> float:
        return float(np.median(self.diameter_ratio) - 1) if self.diameter_ratio else float("nan")

    @property
    def split_share(self) -> float:
        return self.pairs_split / self.pairs if self.pairs else float("nan")

    def add(self, other: Score) -> Score:
        for name in ("true", "found", "detected", "correct", "pixel_inter", "pixel_union", "pairs", "pairs_split"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.diameter_ratio += other.diameter_ratio
        return self

    def as_dict(self) -> dict:
        return {"true": self.true, "detected": self.detected, "recall": self.recall, "precision": self.precision,
                "pixel_iou": self.pixel_iou, "diameter_error": self.diameter_error,
                "diameter_bias": self.diameter_bias, "touching_pairs": self.pairs, "split_share": self.split_share}


def score_image(detected: np.ndarray, truth: np.ndarray, pixel_size_nm: float, *, min_diameter_nm: float = 1.0,
                exclude_border: bool = True, border_px: int = 2) -> Score:
    """Score one label image ``detected`` against the instance image ``truth`` (0 background in both)."""
    s = Score()
    nt, nd = int(truth.max()), int(detected.max())
    t_area = np.bincount(truth.ravel(), minlength=nt + 1)
    d_area = np.bincount(detected.ravel(), minlength=nd + 1)
    counted = np.zeros(nt + 1, bool)
    counted[1:] = 2 * np.sqrt(t_area[1:] / np.pi) * pixel_size_nm >= min_diameter_nm
    counted[0] = False
    if exclude_border:
        b = max(1, border_px)
        counted[np.unique(np.concatenate([truth[:b].ravel(), truth[-b:].ravel(), truth[:, :b].ravel(),
                                          truth[:, -b:].ravel()]))] = False
    counted &= t_area > 0
    # intersections of every (true, detected) pair that overlaps
    both = (truth > 0) & (detected > 0)
    pair_ids, inter = np.unique(truth[both].astype(np.int64) * (nd + 1) + detected[both], return_counts=True)
    ti, di = pair_ids // (nd + 1), pair_ids % (nd + 1)
    iou = inter / (t_area[ti] + d_area[di] - inter)
    match = iou > 0.5
    matched_t = np.zeros(nt + 1, bool)
    matched_d = np.zeros(nd + 1, bool)
    matched_t[ti[match]] = True
    matched_d[di[match]] = True
    ignored_d = np.zeros(nd + 1, bool)  # detections of particles that are not counted
    ignored_d[di[match & ~counted[ti]]] = True
    # and detections overlapping mostly an uncounted particle (a border particle's detection, say)
    best = np.zeros(nd + 1, np.int64)
    best_inter = np.zeros(nd + 1, np.int64)
    for t, d, k in zip(ti, di, inter):
        if k > best_inter[d]:
            best[d], best_inter[d] = t, k
    ignored_d |= (best_inter > 0) & ~counted[best]
    s.true = int(counted.sum())
    s.found = int((matched_t & counted).sum())
    s.detected = int(((d_area > 0) & ~ignored_d)[1:].sum())
    s.correct = int((matched_d & ~ignored_d)[1:].sum())
    for t, d in zip(ti[match], di[match]):
        if counted[t]:
            s.diameter_ratio.append(float(np.sqrt(d_area[d] / t_area[t])))
    # pixel IoU over what is counted: the pixels of uncounted particles and of their detections left out
    skip = (~counted)[truth] & (truth > 0) | ignored_d[detected] & (detected > 0)
    s.pixel_inter = int((both & ~skip).sum())
    s.pixel_union = int((((truth > 0) | (detected > 0)) & ~skip).sum())
    for u, v in touching_pairs(truth):
        if counted[u] and counted[v]:
            s.pairs += 1
            s.pairs_split += int(matched_t[u] and matched_t[v])
    return s
