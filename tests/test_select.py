import pytest

from pipeline.capturing.selection import (
    MESSAGE_LIMIT,
    LayerInfo,
    describe_rule,
    matches,
    no_layer_message,
    select_layers,
)
from pipeline.config import SelectConfig
from pipeline.errors import SelectionError

LAYERS = [
    LayerInfo(0, "input", "InputLayer", (50, 50), is_input=True),
    LayerInfo(1, "dense", "Dense", (50, 75)),
    LayerInfo(2, "my_dense", "Dense", (50, 50)),
    LayerInfo(3, "dense_2", "Dense", (50, 25)),
    LayerInfo(4, "dense_3", "Dense", (50, 10)),
    LayerInfo(5, "flatten", "Flatten", (500,)),
    LayerInfo(6, "output", "Dense", (5,)),
]

CNN = [
    LayerInfo(0, "image", "InputLayer", (28, 28, 3), is_input=True),
    LayerInfo(1, "conv", "Conv2D", (26, 26, 8)),
    LayerInfo(2, "bn", "BatchNormalization", (26, 26, 8)),
    LayerInfo(3, "narrow", "Conv2D", (26, 15, 8)),
    LayerInfo(4, "pool", "MaxPooling2D", (13, 13, 8)),
    LayerInfo(5, "free", "Conv2D", (None, None, 8)),
    LayerInfo(6, "volume", "Conv3D", (20, 20, 20, 4)),
    LayerInfo(7, "sequence", "LSTM", (28, 32)),
    LayerInfo(8, "flatten", "Flatten", (1352,)),
]


def names(cfg):
    return [layer.name for layer in select_layers(LAYERS, cfg)]


def test_seed_rule_is_the_articles():
    assert names(SelectConfig(rule="seed")) == ["dense", "my_dense", "dense_2"]


def test_maps_rule_is_the_default_and_the_article_layers_on_the_articles_model():
    assert SelectConfig().rule == "maps"
    assert names(SelectConfig()) == ["dense", "my_dense", "dense_2"]
    for size in ((15, 25), (0, 0), (49, 0), (100, 100)):
        seed = [x.name for x in LAYERS if matches(x, SelectConfig(rule="seed", min_size=size))]
        maps = [x.name for x in LAYERS if matches(x, SelectConfig(min_size=size))]
        assert maps == seed, size


def test_maps_rule_takes_feature_maps_whose_h_and_w_exceed_min_size():
    def picked(**kw):
        return [layer.name for layer in select_layers(CNN, SelectConfig(**kw))]

    # (H, W, C) and (H, W) alike; strictly greater; unknown H, W and rank 4 never
    assert picked() == ["conv", "bn", "sequence"]
    assert picked(min_size=(12, 12)) == ["conv", "bn", "narrow", "pool", "sequence"]
    assert picked(min_size=(25, 0)) == ["conv", "bn", "narrow", "sequence"]
    assert picked(rule="seed", min_size=(0, 0)) == ["sequence"]


def test_seed_rule_is_strictly_greater():
    # 50x25 qualifies above 15x15 but not above 15x25 (strict >), nor the input layer
    assert names(SelectConfig(rule="seed", min_size=(15, 25))) == ["dense", "my_dense"]
    assert names(SelectConfig(rule="seed", min_size=(0, 0))) == [
        "dense",
        "my_dense",
        "dense_2",
        "dense_3",
    ]


def test_all_rule_keeps_every_non_input_layer():
    assert names(SelectConfig(rule="all")) == [layer.name for layer in LAYERS[1:]]


def test_include_and_exclude_globs():
    assert names(SelectConfig(include=("dense*",))) == ["dense", "dense_2"]
    assert names(SelectConfig(exclude=("my_*",))) == ["dense", "dense_2"]
    assert names(SelectConfig(rule="all", include=("*dense*",), exclude=("dense_3",))) == [
        "dense",
        "my_dense",
        "dense_2",
    ]


def test_class_filters():
    assert names(SelectConfig(rule="all", classes=("Flatten",))) == ["flatten"]
    assert "flatten" not in names(SelectConfig(rule="all", exclude_classes=("Flatten",)))


def test_no_layer_qualifies_says_rule_ranks_and_what_helps():
    with pytest.raises(SelectionError) as err:
        select_layers(LAYERS, SelectConfig(rule="seed", min_size=(100, 100)))
    text = str(err.value)
    assert "H > 100 and W > 100" in text
    assert "6 layers besides the inputs: 2 of rank 1, 4 of rank 2" in text
    # the largest (H, W) output is 50x75: one less on each axis selects it
    assert "--min-size 49x74" in text and "--select all --include GLOB" in text
    assert "`passage layers MODEL`" in text and "\n" not in text
    assert "--select maps" not in text  # maps would select nothing more here


def test_the_min_size_hint_appears_only_where_it_can_help():
    # only vectors: no --min-size can help the size rules, another rule can
    vectors = [LayerInfo(0, "in", "InputLayer", (8,), True), LayerInfo(1, "d", "Dense", (4,))]
    text = no_layer_message(vectors, SelectConfig())
    assert "--min-size" not in text and "--select all" in text
    # rank-3 maps under the strict seed rule: try the maps rule, not a smaller min size
    maps_only = [layer for layer in CNN if layer.name != "sequence"]
    text = no_layer_message(maps_only, SelectConfig(rule="seed"))
    assert "--min-size" not in text and "--select maps" in text
    # a filter that excludes everything: loosen the filters
    text = no_layer_message(CNN, SelectConfig(classes=("Nope",)))
    assert "other --include/--exclude/--class filters" in text and "--select" not in text
    # a min_axis that drops everything
    text = no_layer_message(CNN, SelectConfig(min_axis=(1000,)))
    assert "a smaller --min-axis" in text


def test_no_layer_message_stays_one_short_line_on_a_large_model():
    # MobileNetV2-like: 1 input, 153 rank-3 maps of 12x12 or less, 2 vectors
    layers = [LayerInfo(0, "input_layer", "InputLayer", (96, 96, 3), True)]
    layers += [
        LayerInfo(i, f"block_{i}_expanded_conv_depthwise_BN", "BatchNormalization", (12, 12, 96))
        for i in range(1, 154)
    ]
    layers += [LayerInfo(154, "pool", "GlobalAveragePooling2D", (1280,))]
    layers += [LayerInfo(155, "predictions", "Dense", (1000,))]
    text = no_layer_message(layers, SelectConfig())
    assert len(text) <= MESSAGE_LIMIT, text
    assert "155 layers besides the inputs: 2 of rank 1, 153 of rank 3" in text
    assert "maps rule" in text and "--min-size 11x11" in text
    many = SelectConfig(include=tuple(f"very_long_layer_name_glob_{i}*" for i in range(40)))
    text = no_layer_message(layers, many)
    assert len(text) <= MESSAGE_LIMIT and text.startswith("no layer qualifies under the maps")
    with pytest.raises(SelectionError, match="nothing to capture"):
        select_layers(layers[:1], SelectConfig(rule="all"))


def test_describe_rule_mentions_filters():
    assert "include=['a*']" in describe_rule(SelectConfig(include=("a*",)))
