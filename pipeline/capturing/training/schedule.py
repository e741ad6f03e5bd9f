"""When the training callback records, and under which key (pure: no Keras, no files).

A record's key is the manifest's ``epoch`` field, always an int; run.json ``time`` says which:

- ``every_batches == 0`` (default): unit ``"epoch"``; the key is the number of epochs
  completed: 0 before training, k after the k-th epoch (Keras' 0-based ``epoch`` + 1).
- ``every_batches = K > 0``: unit ``"step"``; the key is the number of optimizer steps
  (batches) completed since the start: 0 before training, every K-th step, and each epoch end.

Records are made after every ``every``-th epoch and always after the last one ``fit`` runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ...errors import ConfigError


@dataclass
class Schedule:
    """The record schedule and the training's progress (``step``: optimizer steps completed
    since the start; ``epochs_done``: epochs completed), advanced by the callback's hooks."""

    every: int = 1
    every_batches: int = 0
    step: int = 0
    epochs_done: int = 0

    @property
    def unit(self) -> str:
        return "step" if self.every_batches else "epoch"

    def time_info(self) -> dict[str, Any]:
        """run.json's ``time``."""
        return {"unit": self.unit, "every": self.every, "every_batches": self.every_batches}

    def expected_keys(self, epochs: int, steps_per_epoch: int | None = None) -> list[int]:
        """Record keys a complete ``fit(epochs=epochs)`` from scratch writes."""
        if self.unit == "epoch":
            return sorted({0, epochs, *range(self.every, epochs + 1, self.every)})
        if steps_per_epoch is None:
            raise ConfigError("expected steps_per_epoch for a run keyed by steps")
        total = epochs * steps_per_epoch
        keys = {0, *range(self.every_batches, total + 1, self.every_batches)}
        keys.update(e * steps_per_epoch for e in range(self.every, epochs + 1, self.every))
        keys.add(total)
        return sorted(keys)

    def begin_epoch(self, epoch: int, steps: int | None) -> None:
        """Epoch ``epoch`` (0-based) begins; ``steps`` per epoch when known. A fit resumed at
        ``initial_epoch`` counts the steps of the epochs it skips."""
        self.epochs_done = epoch
        if self.unit == "step" and steps and self.step < epoch * steps:
            self.step = epoch * steps

    def end_batch(self) -> int | None:
        """One more optimizer step; the key to record under now, or None."""
        self.step += 1
        if self.every_batches and self.step % self.every_batches == 0:
            return self.step
        return None

    def end_epoch(self, epoch: int, epochs: int | None) -> int | None:
        """Epoch ``epoch`` (0-based) of ``epochs`` (when known) ended; the key to record under
        now, or None."""
        self.epochs_done = done = epoch + 1
        if done % self.every == 0 or done == epochs:
            return done if self.unit == "epoch" else self.step
        return None

    def epoch_end_step(self, steps: int | None) -> int | None:
        """The step count at the end of the epoch just completed (None when the steps per
        epoch are not known in epoch unit)."""
        if self.unit == "step":
            return self.step
        return self.epochs_done * steps if steps else None
