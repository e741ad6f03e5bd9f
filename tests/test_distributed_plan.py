"""The distributed stage's pure logic: what --dask names, how a capture is cut into tasks,
and specs made absolute for workers whose working folder is another."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipeline.capturing.pending import Pending
from pipeline.config import from_dict
from pipeline.distributed.address import Address, parse_address
from pipeline.distributed.capture_tasks import absolute_spec, batches_per_task, cut_tasks
from pipeline.errors import ConfigError


@pytest.mark.parametrize(
    ("text", "url", "workers"),
    [
        ("tcp://10.0.0.5:8786", "tcp://10.0.0.5:8786", 0),
        ("10.0.0.5:8786", "tcp://10.0.0.5:8786", 0),
        ("tls://sched.example.org:8786", "tls://sched.example.org:8786", 0),
        (" local:3 ", None, 3),
        ("local", None, os.cpu_count() or 1),
    ],
)
def test_addresses(text, url, workers):
    addr = parse_address(text)
    assert addr == Address(url, workers)
    assert addr.local is (url is None)
    assert str(addr) == (url or f"local:{workers}")


@pytest.mark.parametrize(
    "text", ["", "local:0", "local:x", "local:-1", "http://x:1", "tcp://", "tcp://host", "a b:1"]
)
def test_malformed_addresses_say_what_is_expected(text):
    with pytest.raises(
        ConfigError, match=r"dask address: expected tcp://HOST:PORT .* or local\[:N\]"
    ):
        parse_address(text)


def test_dask_config_table():
    cfg = from_dict({"dask": {"address": "local:2", "batches_per_task": 3, "timeout": 2}})
    assert (cfg.dask.address, cfg.dask.batches_per_task, cfg.dask.timeout) == ("local:2", 3, 2.0)
    with pytest.raises(ConfigError, match=r"\[dask\]: expected batches_per_task >= 0"):
        from_dict({"dask": {"batches_per_task": -1}})
    with pytest.raises(ConfigError, match="unknown config key \\[dask\\] 'workers'"):
        from_dict({"dask": {"workers": 2}})


def _todo(count: int, size: int = 10) -> list[Pending]:
    return [Pending(i * size, size, frozenset({"a"})) for i in range(count)]


def test_tasks_are_consecutive_whole_batches_covering_every_pattern():
    todo = _todo(23)
    for per_task, workers in [(1, 2), (4, 2), (100, 2), (3, 1), (5, 8)]:
        tasks = cut_tasks(todo, per_task, workers)
        assert [b for t in tasks for b in t.batches] == todo
        assert [t.index for t in tasks] == list(range(len(tasks)))
        assert all(len(t.batches) <= per_task for t in tasks)
        assert tasks[0].first == 0 and sum(t.patterns for t in tasks) == 230


def test_large_tasks_are_split_so_every_worker_gets_two_and_the_end_is_short():
    sizes = [len(t.batches) for t in cut_tasks(_todo(40), 100, workers=2)]
    assert sizes == [10, 10, 10, 6, 1, 1, 1, 1]  # not one task; the last four one batch each
    assert [len(t.batches) for t in cut_tasks(_todo(3), 100, workers=4)] == [1, 1, 1]
    assert [len(t.batches) for t in cut_tasks(_todo(12), 1, workers=2)] == [1] * 12
    sizes = [len(t.batches) for t in cut_tasks(_todo(30), 3, workers=2)]
    assert sizes == [3] * 8 + [2] + [1] * 4


def test_batches_per_task_by_size_or_setting():
    assert batches_per_task(30 << 20) == 5  # 128 MiB of outputs per task
    assert batches_per_task(200 << 20) == 1
    assert batches_per_task(0) >= 1  # outputs of unknown size
    assert batches_per_task(30 << 20, setting=2) == 2


def test_specs_are_made_absolute_for_the_workers(tmp_path):
    cwd = tmp_path
    (cwd / "imgs").mkdir()
    assert absolute_spec("builtin:seed", cwd) == "builtin:seed"
    assert absolute_spec("random:100:3", cwd) == "random:100:3"
    assert absolute_spec("pkg.models:build", cwd) == "pkg.models:build"  # importable
    assert absolute_spec("nets/m.py:build", cwd) == f"{cwd}/nets/m.py:build"
    assert absolute_spec("m.py:build", cwd) == f"{cwd}/m.py:build"
    assert absolute_spec("x.npz:train", cwd) == f"{cwd}/x.npz:train"
    assert absolute_spec("m.keras", cwd) == f"{cwd}/m.keras"
    assert absolute_spec("/data/x.npy", cwd) == "/data/x.npy"
    assert absolute_spec("imgs/,meta.npy", cwd) == f"{cwd}/imgs,{cwd}/meta.npy"
    assert Path(absolute_spec("imgs/", cwd)) == cwd / "imgs"
