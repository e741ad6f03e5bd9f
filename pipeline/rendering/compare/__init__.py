"""The compare pictures: a comparison's layer profile, its layers x epochs heatmap (training
runs), the reference RDM beside each layer's RDM, an MDS map of the best layer, and the
regions x layers heatmap. ``rdm_order`` holds the pure arrangement of an RDM for display
(shared with the viewer)."""

from __future__ import annotations

from . import rdm_order, views
from .epochs import draw_epochs
from .mds import draw_mds
from .pictures import draw_comparison, draw_regions
from .profile import draw_profile
from .rdms import draw_rdms
from .regions import draw_regions_matrix

__all__ = [
    "draw_comparison",
    "draw_epochs",
    "draw_mds",
    "draw_profile",
    "draw_rdms",
    "draw_regions",
    "draw_regions_matrix",
    "rdm_order",
    "views",
]
