"""The shipped compare config: its synthetic references are what their script writes, and the
[compare] table reads as documented."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from pipeline import config as cfgmod

ROOT = Path(__file__).resolve().parents[1]


def test_shipped_references_are_what_the_script_writes(tmp_path):
    spec = importlib.util.spec_from_file_location(
        "make_reference", ROOT / "configs" / "reference" / "make_reference.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for path in module.make(tmp_path):
        shipped = np.load(ROOT / "configs" / "reference" / path.name)
        # the same float64 sums, perhaps in another order (BLAS threads): equal to rounding,
        # n eps |terms| with n = 2,500 pixels in [0, 1] gives < 1e-12 on a correlation
        np.testing.assert_allclose(np.load(path), shipped, rtol=0, atol=1e-12)
        assert shipped.shape == (4, 30, 30)
        np.testing.assert_array_equal(shipped, shipped.transpose(0, 2, 1))


def test_compare_table_paths_follow_the_file():
    cfg = cfgmod.load(ROOT / "configs" / "compare.toml")
    folder = ROOT / "configs"
    regions = [text.split("=", 1) for text in cfg.compare.rdms]
    assert [r for r, _ in regions] == ["V1", "IT"]
    for _, path in regions:
        assert Path(path).resolve() == (folder / "reference" / Path(path).name).resolve()
        assert Path(path).is_file()
    assert cfg.train is not None and cfg.train.watch_per_class == 6
