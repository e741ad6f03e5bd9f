"""Stimuli as the model expects them: ``--preprocess NAME|module:function`` and ``--resize
squash|crop`` for image folders. What a model is fed equals ``keras.applications.<family>.
preprocess_input`` of the same files read with Pillow; crop and squash equal a Pillow/numpy
reference; both are recorded in run.json and in the run's identity (a resume with another
one is refused); the kept inputs stay the displayable pictures in [0, 1]; a Keras Application
fed images without ``--preprocess`` gets one notice naming its family."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import orjson
import pytest
from externals import need_keras

keras = need_keras()

from PIL import Image  # noqa: E402

from pipeline import open_run  # noqa: E402
from pipeline.capturing.identity import image_parts  # noqa: E402
from pipeline.capturing.patterns import load_patterns  # noqa: E402
from pipeline.capturing.patterns.images import crop_box  # noqa: E402
from pipeline.capturing.patterns.preprocess import family_of, keras_families  # noqa: E402
from pipeline.capturing.stream import capture_model  # noqa: E402
from pipeline.cli import main  # noqa: E402
from pipeline.config import CaptureConfig, Config, SelectConfig, from_dict  # noqa: E402
from pipeline.errors import ConfigError, PatternError, StoreError  # noqa: E402

H, W = 16, 16
NOTICE = "pipeline.capturing.patterns.preprocess"
FEW = ("block_1_*",)  # MobileNetV2's layers captured where all would only take longer


@pytest.fixture(scope="module")
def fed_model():
    """A model whose first layer, 'fed', passes its input on unchanged: its captured output is
    exactly what Passage fed the model."""
    init = keras.initializers.GlorotUniform(seed=2)
    x = keras.Input((H, W, 3), name="picture")
    fed = keras.layers.Activation("linear", name="fed")(x)
    conv = keras.layers.Conv2D(2, 3, name="conv", kernel_initializer=init)(fed)
    pool = keras.layers.GlobalAveragePooling2D(name="pool")(conv)
    return keras.Model(x, pool, name="tiny")


@pytest.fixture
def pictures(tmp_path):
    """Four seeded RGB pictures of other sizes than the input (two PNG, one JPEG, one wide)."""
    folder = tmp_path / "pictures"
    folder.mkdir()
    rng = np.random.default_rng(7)
    for name, (h, w) in [("a.png", (20, 14)), ("b.png", (16, 16)), ("c.jpg", (24, 30)),
                         ("d.png", (10, 40))]:  # fmt: skip
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(folder / name)
    return folder


def pixels(folder: Path, size: tuple[int, int] = (W, H)) -> np.ndarray:
    """The pictures of ``folder`` squashed to ``size`` (w, h) by Pillow, as 0..255 float32."""
    out = []
    for path in sorted(folder.iterdir()):
        with Image.open(path) as img:
            img = img.convert("RGB")
            if img.size != size:
                img = img.resize(size, Image.Resampling.BILINEAR)
            out.append(np.asarray(img, dtype=np.float32))
    return np.stack(out)


def config(tmp_path, patterns, out="run", include=(), **capture) -> Config:
    base = {"out": str(tmp_path / out), "patterns": str(patterns), "architecture": False}
    select = SelectConfig(rule="all", include=include)
    return Config(capture=CaptureConfig(**{**base, **capture}), select=select)


def captured(run, layer="fed") -> np.ndarray:
    return np.concatenate([a for _, a in run.iter_chunks(layer)])


@pytest.mark.parametrize(
    "family",
    ["resnet50", "vgg16", "mobilenet_v2", "efficientnet", "convnext", "inception_v3", "densenet"],
)
def test_the_model_is_fed_keras_preprocess_input_of_the_files(
    tmp_path, fed_model, pictures, family
):
    run = capture_model(fed_model, config(tmp_path, pictures, preprocess=family, batch_size=3))
    expected = getattr(keras.applications, family).preprocess_input(pixels(pictures))
    # The same float32 operations on the same 8-bit pixels (k / 255 * 255 == k exactly).
    np.testing.assert_array_equal(captured(run), expected)
    assert np.abs(captured(run) - pixels(pictures) / 255.0).max() > 0.5  # not [0, 1] ones


def test_families_preprocess_as_their_conventions_say(tmp_path, fed_model, pictures):
    """The conventions themselves (not only Keras' word for them): caffe BGR minus the
    ImageNet mean, [-1, 1], and 0..255 left as they are."""
    x = pixels(pictures)
    mean_bgr = np.array([103.939, 116.779, 123.68], np.float32)
    runs = {
        f: capture_model(fed_model, config(tmp_path, pictures, f, preprocess=f))
        for f in ("resnet50", "mobilenet_v2", "efficientnet")
    }
    np.testing.assert_allclose(captured(runs["resnet50"]), x[..., ::-1] - mean_bgr, atol=1e-4)
    np.testing.assert_allclose(captured(runs["mobilenet_v2"]), x / 127.5 - 1.0, atol=1e-6)
    np.testing.assert_array_equal(captured(runs["efficientnet"]), x)


def test_without_preprocess_the_model_is_fed_pixels_in_0_1(tmp_path, fed_model, pictures):
    run = capture_model(fed_model, config(tmp_path, pictures))
    np.testing.assert_array_equal(captured(run), pixels(pictures) / 255.0)


def test_kept_inputs_stay_the_displayable_pictures(tmp_path, fed_model, pictures):
    run = capture_model(fed_model, config(tmp_path, pictures, preprocess="resnet50"))
    assert run.inputs == ["picture"]
    kept = np.concatenate([a for _, a in run.iter_input_chunks("picture")])
    np.testing.assert_array_equal(kept, pixels(pictures) / 255.0)
    assert kept.min() >= 0.0 and kept.max() <= 1.0
    assert captured(run).min() < -100  # while the model got caffe-style values


def _crop_reference(path: Path, h: int, w: int) -> np.ndarray:
    """Scale so that the picture covers (h, w), keeping its aspect ratio, then cut the centre
    with numpy (offsets as torchvision's center_crop: round((size - target) / 2))."""
    with Image.open(path) as img:
        img = img.convert("RGB")
        iw, ih = img.size
        scale = max(h / ih, w / iw)
        sw, sh = max(w, round(iw * scale)), max(h, round(ih * scale))
        if (sw, sh) != (iw, ih):
            img = img.resize((sw, sh), Image.Resampling.BILINEAR)
        arr = np.asarray(img, dtype=np.float32) / 255.0
    top, left = int(round((sh - h) / 2)), int(round((sw - w) / 2))
    return arr[top : top + h, left : left + w]


@pytest.mark.parametrize(
    ("size", "target", "box"),
    [
        ((48, 24), (24, 24), ((48, 24), (12, 0, 36, 24))),  # no scaling: the middle columns
        ((60, 30), (20, 20), ((40, 20), (10, 0, 30, 20))),  # shorter side 30 -> 20
        ((24, 40), (16, 16), ((16, 27), (0, 6, 16, 22))),  # tall: the middle rows
        ((40, 40), (20, 30), ((30, 30), (0, 5, 30, 25))),  # a wide target from a square
    ],
)
def test_crop_and_squash_against_pillow_and_numpy(tmp_path, size, target, box):
    (tmp_path / "img").mkdir()
    rng = np.random.default_rng(sum(size))
    path = tmp_path / "img" / "x.png"
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    h, w = target
    assert crop_box(size, h, w) == box
    crop = load_patterns(str(tmp_path / "img"), [(h, w, 3)], resize="crop").batch(0, 1)[0][0]
    np.testing.assert_array_equal(crop, _crop_reference(path, h, w))
    squash = load_patterns(str(tmp_path / "img"), [(h, w, 3)]).batch(0, 1)[0][0]
    np.testing.assert_array_equal(squash, pixels(tmp_path / "img", (w, h))[0] / 255.0)
    assert crop.shape == squash.shape == (h, w, 3)
    if size[0] * h != size[1] * w:  # another aspect ratio: the two differ
        assert not np.array_equal(crop, squash)


def test_crop_keeps_the_centre_exactly(tmp_path):
    """A 48x24 picture whose middle 24 columns are one colour: cropped to 24x24, nothing else."""
    (tmp_path / "img").mkdir()
    img = np.zeros((24, 48, 3), np.uint8)
    img[:, :12] = (255, 0, 0)
    img[:, 12:36] = (0, 128, 255)
    img[:, 36:] = (0, 255, 0)
    Image.fromarray(img).save(tmp_path / "img" / "x.png")
    crop = load_patterns(str(tmp_path / "img"), [(24, 24, 3)], resize="crop").batch(0, 1)[0][0]
    np.testing.assert_array_equal(crop * 255, np.broadcast_to([0, 128, 255], (24, 24, 3)))


def test_run_json_records_preprocess_and_resize(tmp_path, fed_model, pictures):
    cfg = config(tmp_path, pictures, preprocess="mobilenet_v2", resize="crop")
    run = capture_model(fed_model, cfg)
    info = orjson.loads((run.path / "run.json").read_bytes())
    assert info["config"]["capture"]["preprocess"] == "mobilenet_v2"
    assert info["config"]["capture"]["resize"] == "crop"
    assert {"preprocess", "resize"} <= set(info["identity"])
    expected = keras.applications.mobilenet_v2.preprocess_input(
        np.stack([_crop_reference(p, H, W) for p in sorted(pictures.iterdir())]) * 255.0
    )
    np.testing.assert_allclose(captured(run), expected, atol=1e-6)


def test_default_options_add_no_identity_part():
    """Runs begun before --preprocess/--resize existed keep their fingerprints (and resume)."""
    assert image_parts("", "squash") == {}
    assert image_parts("vgg16", "crop") == {"preprocess": "vgg16", "resize": "crop"}


@pytest.mark.parametrize(
    ("first", "then", "words"),
    [
        ({"preprocess": "mobilenet_v2"}, {"preprocess": "resnet50"},
         "the preprocessing (--preprocess): 'mobilenet_v2' in the run, 'resnet50' now"),
        ({}, {"preprocess": "vgg16"}, "the preprocessing (--preprocess)"),
        ({"preprocess": "vgg16"}, {}, "the preprocessing (--preprocess)"),
        ({"resize": "crop"}, {"resize": "squash"},
         "the image resizing (--resize): 'crop' in the run, 'squash' now"),
    ],
)  # fmt: skip
def test_a_resume_with_other_image_options_is_refused(
    tmp_path, fed_model, pictures, first, then, words
):
    capture_model(fed_model, config(tmp_path, pictures, batch_size=2, **first))
    again = capture_model(fed_model, config(tmp_path, pictures, batch_size=2, **first))
    assert again.num_patterns == 4  # the same options resume (nothing left to do)
    with pytest.raises(StoreError, match="holds a different run") as err:
        capture_model(fed_model, config(tmp_path, pictures, batch_size=2, **then))
    assert words in str(err.value)


def test_a_users_function(tmp_path, fed_model, pictures, monkeypatch):
    code = "def scale(x):\n    return x[..., ::-1] / 100.0 - 0.5\n"
    (tmp_path / "prep.py").write_text(code)
    as_file = capture_model(
        fed_model, config(tmp_path, pictures, preprocess=f"{tmp_path}/prep.py:scale")
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    as_module = capture_model(
        fed_model, config(tmp_path, pictures, "run2", preprocess="prep:scale")
    )
    expected = pixels(pictures)[..., ::-1] / 100.0 - 0.5
    np.testing.assert_array_equal(captured(as_file), expected)
    np.testing.assert_array_equal(captured(as_module), expected)


def test_several_inputs_preprocess_the_image_folder_only(tmp_path, pictures):
    np.save(tmp_path / "meta.npy", np.arange(8, dtype=np.float32).reshape(4, 2))
    spec = f"{pictures},{tmp_path / 'meta.npy'}"
    source = load_patterns(spec, [(H, W, 3), (2,)], preprocess="mobilenet_v2")
    read = source.batch(0, 4)
    image, meta = source.feed(read)
    np.testing.assert_array_equal(read[0], pixels(pictures) / 255.0)  # as read: [0, 1]
    np.testing.assert_array_equal(image, pixels(pictures) / 127.5 - 1.0)
    np.testing.assert_array_equal(meta, read[1])


def mobilenet_factory(tmp_path: Path) -> str:
    (tmp_path / "apps.py").write_text(
        "import keras\n\n\ndef mobilenet():\n"
        "    keras.utils.set_random_seed(0)\n"
        "    return keras.applications.MobileNetV2(alpha=0.35, input_shape=(32, 32, 3), "
        "weights=None)\n"
    )
    return f"{tmp_path}/apps.py:mobilenet"


@pytest.mark.parametrize("preprocess", [[], ["--preprocess", "mobilenet_v2"]])
def test_a_keras_application_without_preprocess_gets_one_notice(
    tmp_path, pictures, capsys, preprocess
):
    factory = mobilenet_factory(tmp_path)
    args = ["capture", "--model", factory, "--patterns", str(pictures), "--limit", "2"]
    args += ["--out", str(tmp_path / "run"), "--no-architecture", "--include", "block_1_*"]
    assert main(["-q", *args, *preprocess]) == 0
    lines = capsys.readouterr().err.splitlines()
    notices = [line for line in lines if "looks like keras.applications" in line]
    if preprocess:
        assert notices == []
    else:
        assert len(notices) == 1
        assert "'mobilenetv2_0.35_32'" in notices[0] and "--preprocess mobilenet_v2" in notices[0]


def test_the_notice_only_for_keras_applications_fed_images(tmp_path, fed_model, pictures, caplog):
    np.save(tmp_path / "x.npy", np.zeros((2, 32, 32, 3), np.float32))
    apps = keras.applications.MobileNetV2(alpha=0.35, input_shape=(32, 32, 3), weights=None)
    runs = [
        (apps, config(tmp_path, pictures, "images", FEW, limit=2), 1),  # the one that gets it
        (fed_model, config(tmp_path, pictures, "tiny"), 0),  # not a Keras Application
        (apps, config(tmp_path, tmp_path / "x.npy", "arrays", FEW), 0),  # no images
        (apps, config(tmp_path, pictures, "done", FEW, limit=2, preprocess="mobilenet_v2"), 0),
    ]
    for model, cfg, expected in runs:
        caplog.clear()
        with caplog.at_level(logging.INFO, logger=NOTICE):
            capture_model(model, cfg, quiet=True)
        assert len([r for r in caplog.records if r.name == NOTICE]) == expected, cfg.capture.out


@pytest.mark.parametrize(
    ("name", "family"),
    [
        ("resnet50", "resnet50"), ("resnet101", "resnet"), ("resnet50v2", "resnet_v2"),
        ("vgg16", "vgg16"), ("vgg19", "vgg19"), ("mobilenet_1.00_224", "mobilenet"),
        ("mobilenetv2_1.00_224", "mobilenet_v2"), ("MobileNetV3Small", "mobilenet_v3"),
        ("efficientnetb0", "efficientnet"), ("efficientnetv2-b0", "efficientnet_v2"),
        ("convnext_tiny", "convnext"), ("inception_v3", "inception_v3"),
        ("inception_resnet_v2", "inception_resnet_v2"), ("xception", "xception"),
        ("densenet121", "densenet"), ("nasnet_mobile", "nasnet"),
        ("tiny", None), ("my_resnet50", None), ("functional", None),
    ],
)  # fmt: skip
def test_family_of_a_model_name(name, family):
    assert family_of(name, keras_families()) == family


def test_families_come_from_keras_applications():
    families = keras_families()
    assert {"resnet50", "resnet", "vgg16", "mobilenet_v2", "efficientnet", "convnext"} <= set(
        families
    )
    assert "imagenet_utils" not in families
    assert all(callable(getattr(keras.applications, f).preprocess_input) for f in families)


def test_errors(tmp_path, fed_model, pictures):
    with pytest.raises(ConfigError, match=r"^preprocess: unknown name 'resnet50x'") as err:
        load_patterns(str(pictures), [(H, W, 3)], preprocess="resnet50x")
    assert "resnet50" in str(err.value) and "mobilenet_v2" in str(err.value)
    np.save(tmp_path / "x.npy", np.zeros((2, H, W, 3), np.float32))
    with pytest.raises(ConfigError, match=r"^preprocess: applies to image folders"):
        load_patterns(str(tmp_path / "x.npy"), [(H, W, 3)], preprocess="vgg16")
    with pytest.raises(ConfigError, match=r"^preprocess: applies to image folders"):
        load_patterns("random:3", [(H, W, 3)], preprocess="vgg16")
    with pytest.raises(ConfigError, match=r"^resize: applies to image folders"):
        load_patterns(str(tmp_path / "x.npy"), [(H, W, 3)], resize="crop")
    with pytest.raises(ConfigError, match=r"^preprocess: .*expects RGB images"):
        load_patterns(str(pictures), [(H, W, 1)], preprocess="vgg16")
    (tmp_path / "bad.py").write_text("def flat(x):\n    return x.reshape(len(x), -1)\n")
    with pytest.raises(PatternError, match="expected an array of numbers of the batch's shape"):
        capture_model(fed_model, config(tmp_path, pictures, preprocess=f"{tmp_path}/bad.py:flat"))
    with pytest.raises(ConfigError, match=r"\[capture\] resize: expected one of"):
        from_dict({"capture": {"resize": "stretch"}})
    with pytest.raises(ConfigError, match=r"training runs feed their dataset as it is"):
        from_dict({"capture": {"preprocess": "vgg16"}, "train": {"dataset": "builtin:stripes"}})


def test_the_command_line_names_the_flag(tmp_path, pictures, capsys):
    args = ["capture", "--model", "builtin:seed", "--patterns", str(pictures)]
    assert main(["-q", *args, "--out", str(tmp_path / "r"), "--preprocess", "nope"]) == 2
    assert capsys.readouterr().err.startswith("passage: error: --preprocess: unknown name 'nope'")
    assert main(["-q", *args, "--resize", "stretch"]) == 2
    assert "--resize: invalid choice: 'stretch'" in capsys.readouterr().err


TINY_FACTORY = """import keras


def build():
    init = keras.initializers.GlorotUniform(seed=2)
    x = keras.Input((16, 16, 3), name="picture")
    fed = keras.layers.Activation("linear", name="fed")(x)
    conv = keras.layers.Conv2D(2, 3, name="conv", kernel_initializer=init)(fed)
    return keras.Model(x, keras.layers.GlobalAveragePooling2D(name="pool")(conv), name="tiny")
"""


def test_top_pattern_sheets_reread_the_pictures_as_cropped(tmp_path, fed_model, pictures):
    """A run without kept inputs shows its patterns read again from the folder: cropped as
    captured, and never preprocessed."""
    from pipeline.rendering.analysis.sheets import pattern_source

    cfg = config(tmp_path, pictures, preprocess="vgg16", resize="crop", keep_inputs=False)
    run = capture_model(fed_model, cfg)
    # the in-memory model's spec cannot be read again; the patterns can
    source = pattern_source(run)
    assert source is not None
    shown = np.stack([source.batch(i, 1)[0][0] for i in range(4)])
    expected = np.stack([_crop_reference(p, H, W) for p in sorted(pictures.iterdir())])
    np.testing.assert_array_equal(shown, expected)


@pytest.mark.slow  # ~30 s: a local Dask cluster imports TensorFlow in its worker
def test_a_dask_capture_feeds_the_workers_the_same_preprocessed_pictures(tmp_path, pictures):
    (tmp_path / "tiny.py").write_text(TINY_FACTORY)
    args = ["capture", "--model", f"{tmp_path}/tiny.py:build", "--patterns", str(pictures)]
    args += ["--select", "all", "--no-architecture", "--batch-size", "2"]
    args += ["--preprocess", "vgg16", "--resize", "crop"]
    assert main(["-q", *args, "--out", str(tmp_path / "here")]) == 0
    assert main(["-q", *args, "--out", str(tmp_path / "there"), "--dask", "local:1"]) == 0
    here, there = open_run(tmp_path / "here"), open_run(tmp_path / "there")
    expected = keras.applications.vgg16.preprocess_input(
        np.stack([_crop_reference(p, H, W) for p in sorted(pictures.iterdir())]) * 255.0
    )
    np.testing.assert_allclose(captured(here), expected, atol=1e-4)
    np.testing.assert_array_equal(captured(there), captured(here))
    np.testing.assert_array_equal(
        np.concatenate([a for _, a in there.iter_input_chunks("picture")]),
        np.concatenate([a for _, a in here.iter_input_chunks("picture")]),
    )
