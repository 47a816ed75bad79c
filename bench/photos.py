"""Deterministic square crops of real photos that ship inside installed packages.

Calibration and evaluation draw from disjoint photos, so "agreement with float on held-out real photos"
never rewards a quantizer for memorising its calibration images. Nothing is downloaded: every photo is a
file inside scikit-image, scikit-learn or matplotlib.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import numpy as np
from PIL import Image

# Natural RGB photos only (no clip art, charts or grayscale test cards). The stereo motorcycle pair stays
# in one split so the two near-identical views cannot leak across it.
CALIB_PHOTOS: tuple[str, ...] = (
    "astronaut",  # skimage: portrait with flag and spacesuit
    "coffee",  # skimage: cup of coffee, top view
    "rocket",  # skimage: rocket on the launch pad
    "hubble_deep_field",  # skimage: astronomical photo, mostly dark
    "immunohistochemistry",  # skimage: stained tissue micrograph
    "china",  # scikit-learn: temple in a landscape
)
EVAL_PHOTOS: tuple[str, ...] = (
    "chelsea",  # skimage: a cat
    "grace_hopper",  # matplotlib: portrait in uniform
    "flower",  # scikit-learn: flower close-up
    "motorcycle_left",  # skimage: stereo pair, left view
    "motorcycle_right",  # skimage: stereo pair, right view
    "retina",  # skimage: fundus photograph
)
SPLITS: dict[str, tuple[str, ...]] = {"calib": CALIB_PHOTOS, "eval": EVAL_PHOTOS}

MIN_SCALE = 0.3  # smallest crop side, as a fraction of the photo's short side


def photo_names(split: str) -> tuple[str, ...]:
    """The photos a split draws from."""
    if split not in SPLITS:
        raise ValueError(f"unknown photo split {split!r}; expected one of {sorted(SPLITS)}")
    return SPLITS[split]


def photo_crops(split: str, n: int, size: int, seed: int = 0) -> np.ndarray:
    """n random square crops, uint8 [n, size, size, 3], identical for identical arguments.

    Crop i comes from photo i % len(photos), so every photo is used about equally even for small n, and each
    crop consumes a fixed number of random draws, so the first k crops do not depend on n.
    """
    names = photo_names(split)
    if n < 0 or size <= 0:
        raise ValueError(f"need n >= 0 and size > 0, got n={n}, size={size}")
    rng = np.random.default_rng(seed)
    out = np.empty((n, size, size, 3), dtype=np.uint8)
    for i in range(n):
        image = _photo(names[i % len(names)])
        width, height = image.size
        scale, fx, fy, flip = rng.random(4)
        side = max(1, round((MIN_SCALE + (1.0 - MIN_SCALE) * scale) * min(width, height)))
        x0 = int(fx * (width - side + 1))
        y0 = int(fy * (height - side + 1))
        box = (x0, y0, x0 + side, y0 + side)
        crop = np.asarray(image.resize((size, size), Image.Resampling.BILINEAR, box=box))
        out[i] = crop[:, ::-1] if flip < 0.5 else crop
    return out


@functools.cache
def _photo(name: str) -> Image.Image:
    return Image.fromarray(np.ascontiguousarray(_load(name))).convert("RGB")


def _load(name: str) -> np.ndarray:
    if name in ("china", "flower"):  # load_sample_image's files, without its slow sklearn.datasets import
        spec = importlib.util.find_spec("sklearn")
        if spec is None or not spec.submodule_search_locations:
            raise ModuleNotFoundError("scikit-learn is needed for the china and flower photos")
        path = Path(spec.submodule_search_locations[0]) / "datasets" / "images" / f"{name}.jpg"
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    if name == "grace_hopper":
        from matplotlib import cbook

        with Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)) as image:
            return np.asarray(image.convert("RGB"))
    import skimage.data

    if name in ("motorcycle_left", "motorcycle_right"):
        left, right, _ = skimage.data.stereo_motorcycle()
        return left if name == "motorcycle_left" else right
    return getattr(skimage.data, name)()
