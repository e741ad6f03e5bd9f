"""The training callback's record schedule and metrics lines (pure: no Keras, no files)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from pipeline.capturing.training.metrics import batch_line, epoch_line, plain
from pipeline.capturing.training.schedule import Schedule
from pipeline.errors import ConfigError


def keys_of_a_fit(s: Schedule, epochs: int, steps: int, initial: int = 0) -> list[int]:
    """The keys recorded by the hooks of ``fit(epochs, initial_epoch=initial)`` as Keras calls
    them (train begin records key 0, as the callback does)."""
    keys = [0]
    for epoch in range(initial, epochs):
        s.begin_epoch(epoch, steps)
        for _ in range(steps):
            if (key := s.end_batch()) is not None:
                keys.append(key)
        if (key := s.end_epoch(epoch, epochs)) is not None:
            keys.append(key)
    return keys


def keys_by_the_rules(every: int, every_batches: int, epochs: int, steps: int) -> list[int]:
    """The record keys of a whole ``fit`` from scratch, from the rules in the module's docstring
    alone, counted out step by step: key 0 before training; in epoch unit the number of epochs
    completed after every ``every``-th epoch and after the last; in step unit the number of
    steps completed after every ``every_batches``-th step, and at those same epoch ends."""
    keys = {0}
    step = 0
    for done in range(1, epochs + 1):  # epochs completed
        for _ in range(steps):
            step += 1
            if every_batches and step % every_batches == 0:
                keys.add(step)
        if done % every == 0 or done == epochs:
            keys.add(step if every_batches else done)
    return sorted(keys)


def test_the_rules_written_out() -> None:
    """A few fits counted by hand, so the counting above is itself checked."""
    assert keys_by_the_rules(1, 0, 4, 5) == [0, 1, 2, 3, 4]
    assert keys_by_the_rules(3, 0, 5, 5) == [0, 3, 5]
    assert keys_by_the_rules(2, 4, 3, 5) == [0, 4, 8, 10, 12, 15]
    assert keys_by_the_rules(3, 2, 4, 1) == [0, 2, 3, 4]


@pytest.mark.parametrize(
    ("every", "every_batches", "epochs", "steps"),
    list(itertools.product([1, 2, 3], [0, 1, 2, 4], [1, 4, 5], [1, 5])),
)
def test_a_fit_records_exactly_the_expected_keys(every, every_batches, epochs, steps) -> None:
    want = keys_by_the_rules(every, every_batches, epochs, steps)
    keys = keys_of_a_fit(Schedule(every, every_batches), epochs, steps)
    assert sorted(set(keys)) == want  # what the hooks record
    assert Schedule(every, every_batches).expected_keys(epochs, steps) == want  # what it promises


def test_epoch_keys_count_epochs_and_the_last_is_always_recorded() -> None:
    s = Schedule(every=2)
    assert s.unit == "epoch"
    assert keys_of_a_fit(s, epochs=5, steps=3) == [0, 2, 4, 5]
    assert s.expected_keys(5) == [0, 2, 4, 5]  # steps per epoch not needed


def test_step_keys_count_optimizer_steps_and_each_epoch_end() -> None:
    s = Schedule(every_batches=2)
    assert s.unit == "step"
    assert s.time_info() == {"unit": "step", "every": 1, "every_batches": 2}
    # both the batch hook and the epoch end see step 10: recorded once (the writer skips it)
    assert keys_of_a_fit(s, epochs=2, steps=5) == [0, 2, 4, 5, 6, 8, 10, 10]
    with pytest.raises(ConfigError, match="steps_per_epoch"):
        s.expected_keys(2)


def test_a_fit_resumed_at_initial_epoch_counts_the_steps_it_skips() -> None:
    s = Schedule(every_batches=4)
    assert keys_of_a_fit(s, epochs=3, steps=5, initial=2)[1:] == [12, 15]
    assert s.step == 15 and s.epochs_done == 3
    assert s.epoch_end_step(5) == 15


def test_the_step_of_an_epoch_end_in_epoch_unit() -> None:
    s = Schedule()
    s.begin_epoch(0, 7)
    assert s.end_epoch(0, 3) == 1
    assert s.epoch_end_step(7) == 7
    assert s.epoch_end_step(None) is None  # a hand-written loop does not say its steps


def test_metrics_lines_hold_plain_json_values() -> None:
    assert plain(np.float32(0.5)) == 0.5 and isinstance(plain(np.float32(0.5)), float)
    assert plain(np.array([1, 2], dtype=np.int64)) == [1, 2]
    assert plain("adam") == "adam"
    assert plain(object) == str(object)
    line = epoch_line(3, 15, 1.234567, {"loss": np.float64(0.25), "lr": np.array(0.1)})
    assert line == {"epoch": 3, "step": 15, "time": 1.2346, "loss": 0.25, "lr": 0.1}
    assert batch_line(8, 1, None) == {"scope": "batch", "step": 8, "epoch": 1}
