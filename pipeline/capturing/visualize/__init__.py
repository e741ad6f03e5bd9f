"""Feature visualization and attribution (capture side, TensorFlow): what input each unit of a
layer wants (``optimize.Visualizer``, many channels as one batch) and where in its top
patterns it looks (``attribution.Attributor``, SmoothGrad). ``space`` picks how inputs are
optimized; ``parameterize`` and ``transforms`` are Lucid's image parameterization and
transformation robustness; ``objective`` is a layer's channel activation as a function of the
input."""

from .attribution import Attributor
from .objective import channel_activation, layer_function
from .optimize import Settings, Visualizer, batch_channels
from .space import Space, choose_space

__all__ = [
    "Attributor",
    "Settings",
    "Space",
    "Visualizer",
    "batch_channels",
    "channel_activation",
    "choose_space",
    "layer_function",
]
