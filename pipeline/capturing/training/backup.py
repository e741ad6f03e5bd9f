"""Crash-safe training backup: the weights after each finished epoch, for ``passage capture``
training runs to continue after a crash or with more epochs.

Keras' ``BackupAndRestore`` overwrites one weights file in place (a kill during that write
leaves a file that cannot be loaded) and resumes through a private model attribute. Here each
epoch's weights go to ``epoch-<k>.weights.h5`` through a temporary name and a rename, the
older file is removed only after that, and training resumes through ``fit``'s public
``initial_epoch``.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from pathlib import Path
from typing import Any

from ..framework import keras_and_tf

log = logging.getLogger(__name__)

_NAME = re.compile(r"^epoch-(\d+)\.weights\.h5$")

keras, _ = keras_and_tf()


def latest(folder: Path) -> tuple[int, Path] | None:
    """(epochs finished, weights file) of the newest complete backup, if any."""
    if not folder.is_dir():
        return None
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name))]
    return max(found) if found else None


class EpochBackup(keras.callbacks.Callback):
    """Saves the weights (optimizer state included) after every epoch, atomically; keeps only
    the newest file. With ``restore=True`` it loads the newest backup at train begin, once
    ``fit`` has built the optimizer; pass ``initial_epoch`` (``.initial_epoch``) to ``fit``."""

    def __init__(self, folder: str | Path, restore: bool = False) -> None:
        super().__init__()
        self.folder = Path(folder)
        last = latest(self.folder) if restore else None
        self._restore_from = last[1] if last else None
        self.initial_epoch = last[0] if last else 0

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        if self._restore_from is not None:
            optimizer = getattr(self.model, "optimizer", None)
            if optimizer is not None and not optimizer.built:
                # fit builds it lazily, after train begin: build it now so that its state
                # (Adam's moments, the step count) is restored too, not skipped
                optimizer.build(self.model.trainable_variables)
            self.model.load_weights(str(self._restore_from))
            log.info(
                "continuing the training after epoch %d (weights from %s)",
                self.initial_epoch,
                self._restore_from,
            )
            self._restore_from = None

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        final = self.folder / f"epoch-{epoch + 1}.weights.h5"
        tmp = self.folder / f"tmp-{os.getpid()}.weights.h5"  # Keras wants the .weights.h5 suffix
        self.model.save_weights(str(tmp), overwrite=True)
        os.replace(tmp, final)
        for p in self.folder.iterdir():
            if p != final and (_NAME.match(p.name) or p.name.startswith("tmp-")):
                p.unlink(missing_ok=True)


def clear(folder: Path) -> None:
    if folder.exists():
        shutil.rmtree(folder)
