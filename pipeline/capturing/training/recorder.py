"""Records of the watched patterns in one run: the run held open (its writer, which holds the
run's lock), the probe built once per model, and each record's files written as the manifest
lacks them.

Every file gets its manifest line appended and flushed at once: a training killed at epoch 40
keeps epochs 0-39 on disk.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ...store import RunWriter
from ...store.manifest import complete_records
from ..pending import pending_batches
from ..probe import Probe
from .run_plan import WatchPlan

log = logging.getLogger(__name__)


class Recorder:
    """Writes the records of ``plan`` into ``run_dir`` (keys in ``unit``, see ``schedule``)."""

    def __init__(
        self,
        run_dir: Path,
        unit: str,
        *,
        fmt: str,
        dtype: str,
        durable: bool,
        direct_io: bool,
    ) -> None:
        self.run_dir = run_dir
        self.unit = unit
        self.options = {"fmt": fmt, "dtype": dtype, "durable": durable, "direct_io": direct_io}
        self.plan: WatchPlan | None = None
        self.writer: RunWriter | None = None
        self.probe: Probe | None = None
        self.records = 0  # records written (skipped ones not counted)
        self._probe_model: Any = None

    @property
    def is_open(self) -> bool:
        return self.writer is not None

    def open(self, plan: WatchPlan, overwrite: bool) -> None:
        """Open the run (create, resume, or with ``overwrite`` start it again) for ``plan``."""
        self.writer = RunWriter(self.run_dir, plan.info, overwrite=overwrite, **self.options).open()
        self.plan = plan

    def attach(self, model: Any) -> None:
        """Record ``model``'s outputs: the probe is built once per model."""
        if self.plan is not None and (self.probe is None or self._probe_model is not model):
            self.probe = Probe(model, self.plan.selected)
            self._probe_model = model

    def record(self, key: int) -> bool:
        """Write every layer's output of the watched patterns under ``key``; skip what the
        manifest already holds. Returns whether anything was written."""
        writer, probe, plan = self.writer, self.probe, self.plan
        if writer is None or probe is None or plan is None:
            return False
        source = plan.source
        todo = pending_batches(writer, plan.names, key, source.count, plan.batch_size)
        for batch in todo:
            outputs = probe(source.batch(batch.first, batch.size))
            for name, out in zip(plan.names, outputs, strict=True):
                if name in batch.missing:
                    writer.write(name, key, batch.first, out)
        if todo:
            self.records += 1
            log.debug("recorded %s %d into %s", self.unit, key, self.run_dir)
        return bool(todo)

    def append_metrics(self, line: dict[str, Any]) -> None:
        if self.writer is not None:
            self.writer.append_metrics(line)

    def warn_if_restarted(self, epoch: int) -> None:
        """A second ``fit`` without ``initial_epoch`` numbers its epochs from 0 again: the
        records it would make are in the run already, from the earlier training, and are kept
        (a resume never rewrites a complete record). Say so rather than drop them silently."""
        if epoch != 0 or self.writer is None or self.plan is None:
            return  # a fit given initial_epoch continues the run on purpose (a resume)
        done = complete_records(self.writer.done.values(), self.plan.names, self.plan.source.count)
        later = [k for k in done if k > 0]
        if later:
            hint = f"initial_epoch={later[-1]}" if self.unit == "epoch" else "initial_epoch"
            log.warning(
                "%s already holds records up to %s %d and this fit starts again at 0: what it "
                "records there is kept from the earlier training, not replaced. Pass %s to "
                "fit to continue the run, or use overwrite=True to start it again",
                self.run_dir,
                self.unit,
                later[-1],
                hint,
            )

    def close(self) -> None:
        """Release the run (its lock and open files); ``open`` takes it again."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None
