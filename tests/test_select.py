import pytest

from pipeline.capturing.selection import LayerInfo, describe_rule, select_layers
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


def names(cfg):
    return [layer.name for layer in select_layers(LAYERS, cfg)]


def test_seed_rule_is_the_articles():
    assert names(SelectConfig()) == ["dense", "my_dense", "dense_2"]


def test_seed_rule_is_strictly_greater():
    # 50x25 qualifies above 15x15 but not above 15x25 (strict >), nor the input layer
    assert names(SelectConfig(min_size=(15, 25))) == ["dense", "my_dense"]
    assert names(SelectConfig(min_size=(0, 0))) == ["dense", "my_dense", "dense_2", "dense_3"]


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


def test_no_layer_qualifies_lists_shapes_and_rule():
    with pytest.raises(SelectionError) as err:
        select_layers(LAYERS, SelectConfig(min_size=(100, 100)))
    text = str(err.value)
    assert "H > 100 and W > 100" in text
    assert "dense (Dense) (50, 75)" in text and "output (Dense) (5,)" in text


def test_describe_rule_mentions_filters():
    assert "include=['a*']" in describe_rule(SelectConfig(include=("a*",)))
