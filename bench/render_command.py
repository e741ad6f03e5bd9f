"""Render figures of the whole ``passage render`` command as a new user waits for it: fresh
processes (imports, page layouts built, every page drawn, pool start-up included), Keras
Applications MobileNetV2 (random weights, seeded, every layer, 24 patterns) against the
article's model (``builtin:seed``, seed rule as ``configs/seed.toml``, 1,000 patterns) drawn
by the same command, side by side in one run: with ``--workers 1`` and with the default
pool. A CNN's pages pay for their page layouts (18 distinct pages); the article's one page
layout is paid once over 1,000 patterns."""

from __future__ import annotations

import logging
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipeline.capturing.stream import capture
from pipeline.config import SelectConfig
from pipeline.store import open_run

from .common import capture_config, child_env, passage_cmd
from .figures import Figure
from .measure import interleaved, seconds
from .sizes import Sizes

log = logging.getLogger(__name__)


def mobilenet_v2_small() -> Any:
    """MobileNetV2 at 32x32, the smallest input it takes (the bench's tiny sizes)."""
    import keras

    keras.utils.set_random_seed(0)
    return keras.applications.MobileNetV2(weights=None, input_shape=(32, 32, 3))


def _model(side: int) -> str:
    return "bench.models:mobilenet_v2" if side == 96 else "bench.render_command:mobilenet_v2_small"


def _pages(out: Path) -> int:
    return sum(1 for _ in out.glob("pattern-*/*.png"))


def command_figures(sizes: Sizes, tmp: Path) -> list[Figure]:
    select = SelectConfig(rule="all", include=sizes.render_command_include)
    n_cnn, n_seed = sizes.render_command_cnn, sizes.render_command_seed
    cnn = capture(
        capture_config(
            tmp / "cmd-cnn-run", n_cnn, 0, model=_model(sizes.render_command_side), select=select
        ),
        quiet=True,
    ).path
    seed = capture(capture_config(tmp / "cmd-seed-run", n_seed, 0), quiet=True).path
    pages: dict[str, int] = {}

    def timed(name: str, run: Path, workers: tuple[str, ...]) -> Callable[[], float]:
        out = tmp / f"cmd-out-{name.replace(' ', '-')}"

        def measure() -> float:
            shutil.rmtree(out, ignore_errors=True)
            cmd = passage_cmd("render", str(run), "--out", str(out), *workers)
            elapsed = seconds(lambda: subprocess.run(cmd, env=child_env(), check=True))
            pages[name] = _pages(out)
            shutil.rmtree(out, ignore_errors=True)
            return elapsed

        return measure

    one, default = ("--workers", "1"), ()
    runs = {
        "cnn 1": timed("cnn 1", cnn, one),
        "seed 1": timed("seed 1", seed, one),
        "cnn pool": timed("cnn pool", cnn, default),
        "seed pool": timed("seed pool", seed, default),
    }
    log.info("render: whole commands, %d x %d fresh processes", sizes.repeats, len(runs))
    med = interleaved(runs, sizes.repeats)
    rate = {name: pages[name] / med[name] for name in runs}
    side = sizes.render_command_side
    what = f"MobileNetV2 {side}x{side}, {len(open_run(cnn).layers)} layers, {n_cnn} patterns"
    figures = []
    for key, how in (("1", "--workers 1"), ("pool", "default workers")):
        c, s = f"cnn {key}", f"seed {key}"
        figures.append(
            Figure(
                f"whole `passage render {how}` pages/s: {what} / builtin:seed ({n_seed} "
                "patterns), fresh processes",
                rate[s],
                rate[c],
                "pages/s",
                rate[c] / rate[s],
                (">=", 0.5),
                f"{pages[c]} CNN pages in {med[c]:.2f} s, {pages[s]} seed pages in "
                f"{med[s]:.2f} s; imports, page layouts and pool start-up included",
            )
        )
    return figures
