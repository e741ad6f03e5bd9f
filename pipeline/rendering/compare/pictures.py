"""Draw a comparison's pictures from what ``passage compare`` stored (no TensorFlow):
``RUN/compare/NAME/profile.png``, ``epochs.png`` (training runs), ``rdms.png`` and
``mds.png``, and ``RUN/compare/regions.png`` from ``Run.regions()``. The model RDMs are read
with ``Run.rdm`` (from the cached Grams while they are up to date) in the comparison's
condition order."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ...errors import NotInRunError, PassageError
from ...store import Run
from ...store import compare_files as files
from . import rdm_order, views
from .epochs import draw_epochs
from .mds import draw_mds
from .profile import draw_profile
from .rdms import DISPLAY, Panel, display_rdm, draw_rdms, panel_title
from .regions import draw_regions_matrix

log = logging.getLogger(__name__)

PROFILE = "profile.png"
EPOCHS = "epochs.png"
RDMS = "rdms.png"
MDS = "mds.png"
REGIONS = "regions.png"


def model_rdm(
    run: Run, layer: str, distance: str, epoch: int | None, conditions: np.ndarray
) -> np.ndarray:
    """``layer``'s RDM over the run patterns ``conditions``, in their order (repeats allowed)."""
    unique = np.unique(conditions)
    rdm = run.rdm(layer, distance, epoch, patterns=unique)
    at = np.searchsorted(unique, conditions)
    return rdm[np.ix_(at, at)]


def _title(name: str, comparison: dict[str, Any], references: int) -> str:
    method = comparison.get("method", "score")
    distance = comparison.get("distance", "correlation")
    if "score" not in comparison:
        return f"{name}: median encoding r of each layer"
    refs = f"{references} reference RDM{'s' if references != 1 else ''}"
    return f"{name}: {method} between each layer's RDM ({distance} distance) and {refs}"


def draw_comparison(run: Run, name: str, quiet: bool = False) -> list[Path]:
    """Draw comparison ``name``'s pictures into ``RUN/compare/NAME/``; returns their paths. A
    layer whose RDM cannot be read gets an empty panel (logged)."""
    comparison = run.comparison(name)
    info = files.read_info(run.path, name)
    out = files.comparison_dir(run.path, name)
    method = str(comparison.get("method", "score"))
    distance = str(comparison.get("distance", "correlation"))
    rsa = "score" in comparison
    label = method if rsa else "median encoding r"
    try:
        references = np.asarray(files.read_references(run.path, name), np.float64)
    except NotInRunError:
        references = None
    title = _title(name, comparison, 0 if references is None else references.shape[0])
    profile = views.profile_view(comparison)
    pictures = [draw_profile(profile, out / PROFILE, title, method)]
    if comparison.get("epochs") is not None:
        key = "score" if rsa else "encoding_median"
        values, best = views.epoch_grid(comparison, key)
        pictures.append(
            draw_epochs(
                profile.layers,
                comparison["epochs"],
                values,
                best,
                out / EPOCHS,
                profile.ceiling if rsa else (np.nan, np.nan),
                f"{title}, as the model learns",
                label,
            )
        )
    conditions = np.asarray(info.get("conditions") or range(run.num_patterns), np.int64)
    labels = info.get("labels")
    labels = None if labels is None else np.asarray(labels)
    order, groups = rdm_order.label_order(labels, conditions.size)
    panels: list[Panel] = []
    if references is not None:
        s = references.shape[0]
        head = "reference" if s == 1 else f"reference: mean of {s}"
        panels.append(Panel(head, display_rdm(rdm_order.mean_reference(references), order)))
    best_rdm = None
    when = "" if profile.epoch is None else f", epoch {profile.epoch}"
    for i, layer in enumerate(
        tqdm(profile.layers, desc="compare pictures", unit="layer", disable=quiet, leave=False)
    ):
        score = None if profile.score is None else float(profile.score[i])
        try:
            rdm = model_rdm(run, layer, distance, profile.epoch, conditions)
        except PassageError as exc:
            log.warning("the RDM of %s cannot be read (%s): its panel is left empty", layer, exc)
            panels.append(Panel(panel_title(layer, method, score), None))
            continue
        panels.append(Panel(panel_title(layer, method, score), display_rdm(rdm, order)))
        if i == profile.best:
            best_rdm = rdm
    grouping = "" if labels is None else ", grouped by label"
    pictures.append(
        draw_rdms(
            panels,
            conditions.size,
            out / RDMS,
            groups,
            f"{name}: rank-transformed RDMs of {conditions.size} conditions{grouping}{when}"
            + (
                f" (block means of at most {DISPLAY} x {DISPLAY})"
                if conditions.size > DISPLAY
                else ""
            ),
            DISPLAY,
        )
    )
    if best_rdm is not None:
        best = profile.layers[profile.best]
        pictures.append(
            draw_mds(
                best_rdm,
                out / MDS,
                labels,
                f"{name}: classical MDS of the best layer's RDM, {best} ({distance}{when})",
                class_names(run, labels, conditions),
            )
        )
    return pictures


def class_names(run: Run, labels: np.ndarray | None, conditions: np.ndarray) -> list[str]:
    """The class names a training run recorded for its watched patterns, when ``labels`` are
    that run's own labels of the conditions (not a ``--labels`` file's); else none."""
    watch = run.info.get("watch") or {}
    own = watch.get("labels") or []
    if labels is None or len(own) != run.num_patterns:
        return []
    if not np.array_equal(np.asarray(own)[conditions], labels):
        return []
    return [str(n) for n in watch.get("class_names") or []]


def draw_regions(run: Run) -> Path | None:
    """Draw ``RUN/compare/regions.png`` from ``Run.regions()``; None when the run has none."""
    try:
        regions = run.regions()
    except NotInRunError:
        return None
    view = views.regions_view(regions)
    label = "score"
    for region in view.regions:  # the method, from one of the regions' own comparisons
        try:
            label = str(run.comparison(region).get("method", label))
            break
        except PassageError:
            continue
    return draw_regions_matrix(
        view, files.folder(run.path) / REGIONS, f"brain regions x layers of {run.path.name}", label
    )
