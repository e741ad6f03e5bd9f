"""Pattern sources: .npy, .npz (one key per input), image folders, module:function generators,
one spec per input; and every error they raise."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from externals import need_keras
from PIL import Image

from pipeline.capturing.patterns import load_patterns
from pipeline.capturing.patterns.images import read_image
from pipeline.errors import PatternError, SpecError

IMAGES = Path(__file__).parent / "data" / "images"
IMAGE_NAMES = ["0_circle.png", "1_bar.png", "2_cross.png", "3_gradient.jpg"]


def _all(source):
    return source.batch(0, source.count)


def test_npy_memory_mapped(tmp_path):
    x = np.arange(24, dtype=np.float32).reshape(4, 2, 3)
    np.save(tmp_path / "x.npy", x)
    src = load_patterns(str(tmp_path / "x.npy"), [(2, 3)])
    assert isinstance(src.arrays[0], np.memmap)
    assert np.array_equal(_all(src)[0], x)
    assert src.label(2) == f"{tmp_path / 'x.npy'}[2]"


def test_npy_object_array_is_refused(tmp_path):
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    with pytest.raises(PatternError, match="pickled arrays are refused"):
        load_patterns(str(tmp_path / "obj.npy"), [(None,)])


def test_npz_keys_matched_by_input_name(tmp_path):
    a, b = np.ones((3, 4), np.float32), np.zeros((3, 2), np.float32)
    np.savez(tmp_path / "p.npz", meta=b, image=a)
    src = load_patterns(str(tmp_path / "p.npz"), [(4,), (2,)], ["image", "meta"])
    xa, xb = _all(src)
    assert np.array_equal(xa, a) and np.array_equal(xb, b)


def test_npz_key_map(tmp_path):
    np.savez(tmp_path / "p.npz", x1=np.ones((2, 4)), x2=np.zeros((2, 2)))
    src = load_patterns(
        str(tmp_path / "p.npz"), [(4,), (2,)], ["image", "meta"], {"image": "x1", "meta": "x2"}
    )
    assert [s for s in src.shapes] == [(4,), (2,)]
    image, meta = _all(src)
    assert np.array_equal(image, np.ones((2, 4))) and np.array_equal(meta, np.zeros((2, 2)))


def test_npz_errors(tmp_path):
    np.savez(tmp_path / "p.npz", x1=np.ones((2, 4)), x2=np.zeros((3, 2)))
    path = str(tmp_path / "p.npz")
    with pytest.raises(SpecError, match=r"expected one key per model input.*image -> image"):
        load_patterns(path, [(4,), (2,)], ["image", "meta"])
    with pytest.raises(SpecError, match="not model inputs"):
        load_patterns(path, [(4,), (2,)], ["image", "meta"], {"nope": "x1"})
    with pytest.raises(PatternError, match="different pattern counts"):
        load_patterns(path, [(4,), (2,)], ["image", "meta"], {"image": "x1", "meta": "x2"})
    with pytest.raises(SpecError, match="one key feeds one input"):
        load_patterns(path + ":x1", [(4,), (2,)], ["image", "meta"])
    with pytest.raises(SpecError, match="name one as"):
        load_patterns(path, [(4,)], ["image"])
    with pytest.raises(SpecError, match="no key 'x9'"):
        load_patterns(path + ":x9", [(4,)], ["image"])


def test_npy_for_two_inputs_is_an_error(tmp_path):
    np.save(tmp_path / "x.npy", np.ones((2, 4), np.float32))
    with pytest.raises(SpecError, match="one key per input"):
        load_patterns(str(tmp_path / "x.npy"), [(4,), (2,)], ["a", "b"])


def test_image_folder_gray_sorted_scaled():
    src = load_patterns(str(IMAGES), [(28, 28, 1)])
    assert src.count == 4 and src.kind == "images"
    assert src.names == IMAGE_NAMES
    (x,) = src.batch(1, 3)
    assert x.shape == (3, 28, 28, 1) and x.dtype == np.float32
    assert 0.0 <= x.min() and x.max() <= 1.0
    bar = np.asarray(Image.open(IMAGES / "1_bar.png"), np.float32) / 255.0
    assert np.array_equal(x[0, :, :, 0], bar)


def test_image_folder_for_2d_rgb_and_resized_inputs():
    (x2,) = load_patterns(str(IMAGES), [(28, 28)]).batch(0, 4)
    assert x2.shape == (4, 28, 28)
    (rgb,) = load_patterns(str(IMAGES), [(16, 12, 3)]).batch(3, 1)
    assert rgb.shape == (1, 16, 12, 3)  # the 40x36 JPEG resized to W=12, H=16
    assert np.allclose(rgb[0], read_image(IMAGES / "3_gradient.jpg", 16, 12, "RGB"))


def test_image_folder_errors(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(PatternError, match=r"holds no PNG/JPEG images \(found: notes.txt\)"):
        load_patterns(str(tmp_path), [(28, 28, 1)])
    (tmp_path / "broken.png").write_bytes(b"not a png")
    src = load_patterns(str(tmp_path), [(28, 28, 1)])
    with pytest.raises(PatternError, match="broken.png cannot be read"):
        src.batch(0, 1)
    with pytest.raises(PatternError, match="unknown height or width"):
        load_patterns(str(IMAGES), [(None, None, 1)])
    with pytest.raises(PatternError, match="1, 3 or 4 channels"):
        load_patterns(str(IMAGES), [(28, 28, 2)])
    with pytest.raises(PatternError, match=r"\(H, W\) or \(H, W, C\)"):
        load_patterns(str(IMAGES), [(10,)])
    with pytest.raises(SpecError, match="one spec per input"):
        load_patterns(str(IMAGES), [(28, 28, 1), (3,)], ["image", "meta"])


def test_one_spec_per_input(tmp_path):
    meta = np.arange(8, dtype=np.float32).reshape(4, 2)
    np.save(tmp_path / "meta.npy", meta)
    spec = f"{IMAGES},{tmp_path / 'meta.npy'}"
    src = load_patterns(spec, [(28, 28, 1), (2,)], ["image", "meta"])
    img, m = src.batch(2, 2)
    assert img.shape == (2, 28, 28, 1) and np.array_equal(m, meta[2:4])
    assert src.label(3) == f"3_gradient.jpg,{tmp_path / 'meta.npy'}[3]"
    with pytest.raises(PatternError, match="names 2 sources; the model has 1"):
        load_patterns(spec, [(28, 28, 1)], ["image"])
    np.save(tmp_path / "short.npy", meta[:3])
    with pytest.raises(PatternError, match=r"hold \[4, 3\] patterns"):
        load_patterns(f"{IMAGES},{tmp_path / 'short.npy'}", [(28, 28, 1), (2,)], ["image", "meta"])


GEN_MODULE = """
import numpy as np

def batches():
    for i in range(3):
        yield np.full((2, 4), i, np.float32)

def pairs():
    for i in range(2):
        yield (np.full((2, 4), i, np.float32), np.zeros(2))

def dicts():
    yield {"image": np.ones((3, 4), np.float32), "meta": np.zeros((3, 2), np.float32)}

def dataset():
    import tensorflow as tf
    x = np.arange(20, dtype=np.float32).reshape(5, 4)
    return tf.data.Dataset.from_tensor_slices((x, np.zeros(5))).batch(2)

def nothing():
    return []

def not_iterable():
    return 42

def ragged():
    yield np.ones((2, 4), np.float32)
    yield np.ones((2, 5), np.float32)

def mixed_dtypes():
    yield np.zeros((2, 4), np.uint8)
    yield np.full((2, 4), 0.5)

def wider():
    yield np.zeros((2, 4), np.float32)
    yield np.full((2, 4), 0.5)  # float64: stored as the first batch's float32

def needs_an_argument(n):
    return []

def broken():
    return None + 1

def endless():
    i = 0
    while True:
        yield np.full((3, 4), i, np.float32)
        i += 1

def endless_dataset():
    import tensorflow as tf
    x = np.arange(20, dtype=np.float32).reshape(5, 4)
    return tf.data.Dataset.from_tensor_slices(x).batch(2).repeat()
"""


@pytest.fixture
def gen_file(tmp_path):
    path = tmp_path / "gen.py"
    path.write_text(GEN_MODULE)
    return path


def test_generator_sources(gen_file):
    src = load_patterns(f"{gen_file}:batches", [(4,)])
    assert src.count == 6 and src.kind == "generator"
    assert np.array_equal(_all(src)[0][:, 0], [0, 0, 1, 1, 2, 2])
    # spilled to a temporary file, memory-mapped, and the file already unlinked
    assert isinstance(src.arrays[0], np.memmap)
    assert not Path(src.arrays[0].filename).exists()
    assert load_patterns(f"{gen_file}:pairs", [(4,)]).count == 4
    two = load_patterns(f"{gen_file}:dicts", [(4,), (2,)], ["image", "meta"])
    assert two.count == 3 and two.shapes == [(4,), (2,)]


def test_generator_tf_data(gen_file):
    need_keras()
    src = load_patterns(f"{gen_file}:dataset", [(4,)])
    assert src.count == 5
    assert np.array_equal(_all(src)[0], np.arange(20, dtype=np.float32).reshape(5, 4))


def test_generator_errors(gen_file):
    with pytest.raises(PatternError, match="yielded no patterns"):
        load_patterns(f"{gen_file}:nothing", [(4,)])
    with pytest.raises(SpecError, match="iterable of batches .*received int"):
        load_patterns(f"{gen_file}:not_iterable", [(4,)])
    with pytest.raises(PatternError, match="batches differ in shape"):
        load_patterns(f"{gen_file}:ragged", [(4,)])
    with pytest.raises(PatternError, match="dict batch needs one key per model input"):
        load_patterns(f"{gen_file}:dicts", [(4,), (2,)], ["image", "other"])
    with pytest.raises(PatternError, match="expects"):
        load_patterns(f"{gen_file}:batches", [(5,)])
    with pytest.raises(SpecError, match="has no 'missing'"):
        load_patterns(f"{gen_file}:missing", [(4,)])
    with pytest.raises(PatternError, match="input 0 is float64 after batches of uint8"):
        load_patterns(f"{gen_file}:mixed_dtypes", [(4,)])
    assert _all(load_patterns(f"{gen_file}:wider", [(4,)]))[0][2, 0] == np.float32(0.5)
    with pytest.raises(SpecError, match="failed when called with no arguments: TypeError"):
        load_patterns(f"{gen_file}:needs_an_argument", [(4,)])
    with pytest.raises(SpecError, match="no arguments: TypeError: unsupported operand"):
        load_patterns(f"{gen_file}:broken", [(4,)])


def test_unknown_spec_and_missing_file(tmp_path):
    (tmp_path / "x.csv").write_text("1,2")
    with pytest.raises(SpecError, match="expected file.npy"):
        load_patterns(str(tmp_path / "x.csv"), [(2,)])
    with pytest.raises(PatternError, match="not found"):
        load_patterns(str(tmp_path / "nope.npy"), [(2,)])
    with pytest.raises(PatternError, match="not found"):
        load_patterns(str(tmp_path / "nope.npz") + ":x", [(2,)])
    with pytest.raises(SpecError, match="cannot import 'no_such_module_xyz'"):
        load_patterns("no_such_module_xyz:batches", [(2,)])


def test_config_inputs_table():
    from pipeline.config import from_dict
    from pipeline.errors import ConfigError

    cfg = from_dict({"capture": {"patterns": "p.npz", "inputs": {"image": "x1", "meta": "x2"}}})
    assert cfg.capture.inputs == {"image": "x1", "meta": "x2"}
    with pytest.raises(ConfigError, match=r"\[capture\] inputs: expected a string"):
        from_dict({"capture": {"inputs": {"image": 1}}})
    with pytest.raises(ConfigError, match="expected a table"):
        from_dict({"capture": {"inputs": "image=x1"}})
    with pytest.raises(ConfigError, match="min_axis: expected sizes >= 0"):
        from_dict({"select": {"rule": "all", "min_axis": [-1]}})


def test_limit_stops_an_endless_generator_and_trims_every_source(gen_file, tmp_path):
    src = load_patterns(f"{gen_file}:endless", [(4,)], limit=7)
    assert src.count == 7
    assert np.array_equal(_all(src)[0][:, 0], [0, 0, 0, 1, 1, 1, 2])
    need_keras()
    rep = load_patterns(f"{gen_file}:endless_dataset", [(4,)], limit=12)  # tf.data .repeat()
    x = np.arange(20, dtype=np.float32).reshape(5, 4)
    assert np.array_equal(_all(rep)[0], np.concatenate([x, x, x[:2]]))
    assert load_patterns("random:10", [(3,)], limit=4).count == 4
    assert load_patterns("random:3", [(3,)], limit=4).count == 3  # fewer than the limit
    np.testing.assert_array_equal(
        _all(load_patterns("random:10", [(3,)], limit=4))[0],
        _all(load_patterns("random:10", [(3,)]))[0][:4],
    )
    images = load_patterns(str(IMAGES), [(28, 28, 1)], limit=2)
    assert images.count == 2 and len(images.names) == 2
