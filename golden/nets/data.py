"""The data: scikit-learn's bundled handwritten digits, one fixed train/test split.

``sklearn.datasets.load_digits`` ships 1,797 8x8 images (pixel values 0..16, 10 classes)
inside the package, so nothing is downloaded. The split is by index, with no random
numbers, so it is the same on every machine and every library version:

* test  = images whose index ``i`` satisfies ``i % 4 == 0`` (450 images, 38..50 per class),
* train = the other 1,347 images.

The data set lists the digits of each writer in turn, so every writer appears on both
sides, as in a shuffled split.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files

import numpy as np

__all__ = ["Split", "load_split", "TEST_EVERY", "PARAMS", "load_params"]

#: The committed trained parameters (package data, ``qrtl/golden/nets/params/NAME.npz``),
#: which ``qrtl train NAME`` reproduces. Read-only: training writes elsewhere.
PARAMS = files("qrtl.golden.nets") / "params"


def load_params(name: str) -> dict:
    """The arrays of the committed parameter file ``NAME.npz``."""
    with (PARAMS / f"{name}.npz").open("rb") as fh, np.load(fh) as d:
        return {k: d[k] for k in d.files}

#: every TEST_EVERY-th image (index multiple of it) is a test image
TEST_EVERY = 4


@dataclass(frozen=True)
class Split:
    """Pixels (uint8, 0..16, shape (N, 64), row-major 8x8) and labels (int64) of each side."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


@lru_cache(maxsize=1)
def load_split() -> Split:
    """The fixed split described in the module docstring (arrays are read-only)."""
    from sklearn.datasets import load_digits
    d = load_digits()
    x = d.data.astype(np.uint8)
    y = d.target.astype(np.int64)
    test = np.arange(len(y)) % TEST_EVERY == 0
    parts = [x[~test], y[~test], x[test], y[test]]
    for p in parts:
        p.setflags(write=False)
    return Split(*parts)
