"""`passage export tensorboard`: the event files read back with our own TFRecord reader and
tensorboardX's protos, every image's pixels and every histogram checked against numpy."""

from __future__ import annotations

import io
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from analysis_helpers import write_run
from PIL import Image
from tensorboardX.proto import event_pb2

from pipeline.cli import main
from pipeline.viewer.colormaps import lut
from pipeline.viewer.tensorboard import export_tensorboard

# -- the TFRecord framing, read by hand: u64 length, masked CRC-32C of it, payload, masked CRC


def _crc32c_table() -> list[int]:
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    c = 0xFFFFFFFF
    for b in data:
        c = TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def masked(crc: int) -> int:
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def read_events(logdir: Path) -> list[event_pb2.Event]:
    files = sorted(logdir.glob("events.out.tfevents.*"))
    assert len(files) == 1, files
    data = files[0].read_bytes()
    events, pos = [], 0
    while pos < len(data):
        head = data[pos : pos + 8]
        (length,) = struct.unpack("<Q", head)
        (head_crc,) = struct.unpack("<I", data[pos + 8 : pos + 12])
        assert head_crc == masked(crc32c(head)), f"length CRC at byte {pos}"
        payload = data[pos + 12 : pos + 12 + length]
        (crc,) = struct.unpack("<I", data[pos + 12 + length : pos + 16 + length])
        assert crc == masked(crc32c(payload)), f"payload CRC at byte {pos}"
        events.append(event_pb2.Event.FromString(payload))
        pos += 16 + length
    assert pos == len(data)
    return events


def summaries(events: list[event_pb2.Event]) -> dict[tuple[str, int], object]:
    """(tag, step) -> the summary value (each pair written once)."""
    out: dict[tuple[str, int], object] = {}
    for ev in events:
        for value in ev.summary.value:
            key = (value.tag, ev.step)
            assert key not in out, f"{key} written twice"
            out[key] = value
    return out


# -- what the pixels must be, from the stored values alone


def expected_rgb(values: np.ndarray, cmap: str = "viridis") -> np.ndarray:
    """The viewer's drawing of one 2-D or (H, W, C) output, computed here independently."""
    table = lut(cmap)
    if values.ndim == 3:
        h, w, c = values.shape
        cols = int(np.ceil(np.sqrt(c)))
        rows = int(np.ceil(c / cols))
        img = np.full((rows * (h + 1) - 1, cols * (w + 1) - 1), np.nan, np.float32)
        pad = np.ones(img.shape, bool)
        for k in range(c):
            r, q = divmod(k, cols)
            img[r * (h + 1) : r * (h + 1) + h, q * (w + 1) : q * (w + 1) + w] = values[..., k]
            pad[r * (h + 1) : r * (h + 1) + h, q * (w + 1) : q * (w + 1) + w] = False
    elif values.ndim == 1:
        n = values.size
        cols = int(np.ceil(np.sqrt(n)))
        rows = int(np.ceil(n / cols))
        img = np.full(rows * cols, np.nan, np.float32)
        img[:n] = values
        img = img.reshape(rows, cols)
        pad = np.arange(rows * cols).reshape(rows, cols) >= n
    else:
        img, pad = values, np.zeros(values.shape, bool)
    ok = np.isfinite(img) & ~pad
    lo, hi = float(img[ok].min()), float(img[ok].max())
    out = np.zeros((*img.shape, 3), np.uint8)
    for y, x in zip(*np.nonzero(ok), strict=True):
        i = (
            0
            if hi == lo
            else int(np.clip(round((float(img[y, x]) - lo) / (hi - lo) * 255), 0, 255))
        )
        out[y, x] = table[i]
    out[~ok] = (255, 0, 255)
    out[pad] = (255, 255, 255)
    return out


def decode_png(value) -> np.ndarray:
    return np.array(Image.open(io.BytesIO(value.image.encoded_image_string)).convert("RGB"))


@pytest.fixture
def train_run(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray], list[int]]:
    rng = np.random.default_rng(7)
    epochs = [0, 2, 5]
    layers = {
        "conv": rng.normal(size=(3, 12, 4, 5, 3)).astype(np.float32),
        "dense": rng.normal(size=(3, 12, 3, 6)).astype(np.float32),
        "head#2": rng.normal(size=(3, 12, 7)).astype(np.float32),
    }
    layers["dense"][1, 4, 0, 2] = np.nan  # a NaN: magenta, left out of the histogram
    layers["dense"][2, 1] = 0.25  # a constant output: index 0 everywhere
    root = write_run(tmp_path / "run", layers, batch=5, epochs=epochs)
    lines = [
        f'{{"epoch": {e}, "step": {e * 3}, "time": 0.1, "loss": {1.0 / (e + 1)}}}' for e in epochs
    ]
    (root / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    return root, layers, epochs


def test_images_histograms_and_metrics_read_back(train_run, tmp_path):
    root, layers, epochs = train_run
    summary = export_tensorboard(root, tmp_path / "tb", patterns="1,4,10", quiet=True)
    assert summary.images == 3 * 3 * 3 and summary.histograms == 3 * 3 and summary.scalars == 3
    assert not summary.damaged
    got = summaries(read_events(tmp_path / "tb"))
    image_keys = {k for k, v in got.items() if v.HasField("image")}
    assert image_keys == {
        (f"pattern-{p}/{tag}", e)
        for p in (1, 4, 10)
        for tag in ("conv", "dense", "head_2")
        for e in epochs
    }
    for e_i, e in enumerate(epochs):
        for name, tag in (("conv", "conv"), ("dense", "dense"), ("head#2", "head_2")):
            for p in (1, 4, 10):
                value = got[(f"pattern-{p}/{tag}", e)]
                want = expected_rgb(layers[name][e_i, p])
                assert (value.image.height, value.image.width) == want.shape[:2]
                np.testing.assert_array_equal(decode_png(value), want, err_msg=f"{name} {p} {e}")
            hist = got[(f"activations/{tag}", e)].histo
            values = layers[name][e_i, [1, 4, 10]].astype(np.float64).ravel()
            values = values[np.isfinite(values)]
            counts, edges = np.histogram(values, bins=64)
            assert list(hist.bucket) == counts.tolist()
            np.testing.assert_allclose(hist.bucket_limit, edges[1:])
            assert hist.num == values.size and hist.min == values.min() and hist.max == values.max()
            assert hist.sum == pytest.approx(values.sum())
            assert hist.sum_squares == pytest.approx((values**2).sum())
    for e in epochs:
        assert got[("metrics/loss", e)].simple_value == pytest.approx(1.0 / (e + 1))
    nan_pixels = decode_png(got[("pattern-4/dense", 2)])  # epoch index 1, pattern 4
    assert tuple(nan_pixels[0, 2]) == (255, 0, 255)
    constant = decode_png(got[("pattern-1/dense", 5)])
    assert (constant == lut("viridis")[0]).all()


def test_batch_run_step_zero_default_patterns_and_cmap(tmp_path):
    rng = np.random.default_rng(3)
    layers = {"a": rng.normal(size=(14, 5, 5)).astype(np.float32)}
    root = write_run(tmp_path / "run", layers, batch=4)
    code = main(["export", "tensorboard", str(root), "--logdir", str(tmp_path / "tb"), "-q",
                 "--cmap", "magma"])  # fmt: skip
    assert code == 0
    got = summaries(read_events(tmp_path / "tb"))
    assert {k for k in got if k[0].startswith("pattern-")} == {
        (f"pattern-{p}/a", 0) for p in range(10)
    }
    for p in range(10):
        want = expected_rgb(layers["a"][p], "magma")
        np.testing.assert_array_equal(decode_png(got[(f"pattern-{p}/a", 0)]), want)


def test_a_damaged_file_is_left_out_and_exit_1(tmp_path, capsys):
    rng = np.random.default_rng(5)
    layers = {"a": rng.normal(size=(8, 3, 3)).astype(np.float32)}
    root = write_run(tmp_path / "run", layers, batch=4)
    victim = sorted((root / "data").rglob("*.npy"))[1]  # patterns 4..7
    victim.write_bytes(victim.read_bytes()[:-8])
    code = main(["export", "tensorboard", str(root), "--logdir", str(tmp_path / "tb"), "-q"])
    assert code == 1
    assert "damaged" in capsys.readouterr().err
    got = summaries(read_events(tmp_path / "tb"))
    assert {k[0] for k in got if k[0].startswith("pattern-")} == {
        f"pattern-{p}/a" for p in range(4)
    }
    counts = np.histogram(layers["a"][:4].astype(np.float64), bins=64)[0]
    assert list(got[("activations/a", 0)].histo.bucket) == counts.tolist()


def test_bad_arguments_are_one_line_errors(tmp_path, capsys):
    layers = {"a": np.zeros((4, 2, 2), np.float32)}
    root = write_run(tmp_path / "run", layers, batch=4)
    assert main(["export", "tensorboard", str(root), "--logdir", str(tmp_path / "tb"),
                 "--patterns", "3-9"]) == 2  # fmt: skip
    assert main(["export", "csv", str(root), "--logdir", str(tmp_path / "tb")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("passage") for line in err)
    assert "0..3" in err[0] and "tensorboard" in err[1]


def test_the_export_never_imports_tensorflow(train_run, tmp_path):
    root = train_run[0]
    code = (
        "import sys; from pipeline.cli import main; "
        f"rc = main(['export', 'tensorboard', {str(root)!r}, '--logdir', {str(tmp_path / 'tb')!r}, '-q']); "
        "assert rc == 0, rc; "
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'tensorflow imported'"
    )
    repo = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=repo, capture_output=True, text=True, timeout=120,
        env={"PYTHONPATH": str(repo), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert sorted((tmp_path / "tb").glob("events.out.tfevents.*"))
