"""How big each benchmark is: ``FULL`` (``make bench``), ``QUICK`` (``make bench-quick``) and
``TINY`` (the test that keeps the benchmarks from rotting)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Sizes:
    capture: int  # patterns for the capture throughput figures (article's model)
    capture_small: int  # the smaller capture of the peak-RSS ratio
    article: int  # patterns the article's capture method is timed on
    cnn: int  # patterns for the CNN ratio
    json: int  # patterns for the JSON / NPY ratio
    render: int  # grids for the render throughput figure
    article_render: int  # grids the article's render loop is timed on
    render_rss: tuple[int, int]  # (small, large) pattern counts of the render peak-RSS ratio
    analysis: int  # patterns of the run the analyze figures are measured on (article's model)
    analysis_small: int  # the smaller run of the analyze peak-RSS ratio
    repeats: int = 3
    batch_size: int = 0  # 0: chosen by memory budget, as `passage capture` does by default
    fixed_batch: int = 512  # the CNN figure is also reported at this batch size
    training_repeats: int = 1
    training: bool = True
    cnn_pages: int = 4  # MobileNetV2 patterns drawn for the CNN pages figure (18 pages each)
    cnn_pages_mpl: int = 1  # of those, drawn by matplotlib's PagePainter
    seed_pages: int = 200  # builtin:seed patterns (one page each) beside them
    cnn_pages_include: tuple[str, ...] = ()  # name globs: fewer layers (quick sizes)
    analysis_cka_repeats: int = 1  # timed analyses with exact CKA (~1 s per 2,048 patterns)
    viewer: int = 100_000  # patterns of the run the browser viewer opens (article's model)
    viewer_switches: int = 50  # pattern switches timed in the browser (p50, p95)
    distributed: int = 60_000  # patterns of the --dask local:2 capture figures
    overhead_batches: int = 200  # small batches of the Dask task-overhead figure
    rdm_conditions: int = 5_000  # patterns of the run whose model RDMs are timed
    rdm_features: int = 16_384  # features per pattern of each of its layers
    rdm_layers: int = 2
    encoding_conditions: int = 2_000  # the encoding figure: conditions x features x voxels
    encoding_features: int = 100_000
    encoding_voxels: int = 1_000
    compare_epochs: int = 13  # the whole `passage compare` command on configs/compare.toml's size
    compare_bootstrap: int = 1_000
    visualize_channels: int = 64  # channels of the conv layer visualized batched / one at a time
    visualize_steps: int = 64  # optimization steps of that figure
    visualize_rss: tuple[int, int] = (64, 256)  # channels of the 256-channel layer, peak RSS
    visualize_rss_batch: int = 64  # channels per batch in both peak-RSS children
    visualize_rss_steps: int = 16
    visualize_patterns: int = 64  # patterns of the builtin:cnn run of the whole command
    visualize_command_steps: int = 64
    visualize_layers: tuple[str, ...] = ()  # --layers of the whole command (empty: every layer)
    render_command_cnn: int = 24  # MobileNetV2 patterns of the whole `passage render` figures
    render_command_seed: int = 1_000  # builtin:seed patterns beside them
    render_command_side: int = 96  # MobileNetV2 input side (96 or 32)
    render_command_include: tuple[str, ...] = ()  # name globs: fewer layers (quick sizes)


FULL = Sizes(
    capture=100_000,
    capture_small=10_000,
    article=24,
    cnn=100_000,  # as many as the seed figure: fixed start-up costs amortize the same way
    json=5_000,
    render=400,
    article_render=24,
    render_rss=(1_000, 10_000),
    analysis=100_000,
    analysis_small=10_000,
    training_repeats=5,  # one training takes ~2-3 s: a single pair is too noisy
)
QUICK = Sizes(
    capture=3_000,
    capture_small=300,
    article=3,
    cnn=1_000,
    json=400,
    render=48,
    article_render=4,
    render_rss=(30, 300),
    # both above the 2,048 patterns below which CKA is exact from Gram matrices (much less
    # memory): the peak-RSS ratio compares the same method, as the full sizes do
    analysis=6_000,
    analysis_small=3_000,
    repeats=2,
    viewer=3_000,
    distributed=3_000,
    overhead_batches=40,
    cnn_pages=2,
    seed_pages=48,
    # large, middle and small maps, the classifier: pages like the whole model's, fewer
    cnn_pages_include=("block_1_*", "block_6_*", "block_13_*", "Conv_1*", "predictions"),
    render_command_cnn=4,
    render_command_seed=200,
    render_command_include=("block_1_*", "block_6_*", "block_13_*", "Conv_1*", "predictions"),
    rdm_conditions=2_000,
    rdm_features=10_000,
    encoding_conditions=600,
    encoding_features=20_000,
    encoding_voxels=300,
    visualize_steps=16,
    visualize_rss_steps=4,
    visualize_command_steps=16,
)
TINY = Sizes(
    capture=300,
    capture_small=30,
    article=1,
    cnn=64,
    json=30,
    render=4,
    article_render=1,
    render_rss=(4, 8),
    analysis=300,
    analysis_small=30,
    repeats=1,
    viewer=300,
    viewer_switches=5,
    distributed=300,
    overhead_batches=12,
    batch_size=64,
    training=False,
    cnn_pages=1,
    seed_pages=4,
    cnn_pages_include=("block_1_*",),
    render_command_cnn=1,
    render_command_seed=8,
    render_command_side=32,
    render_command_include=("block_1_*",),
    rdm_conditions=200,
    rdm_features=2_000,
    rdm_layers=1,
    encoding_conditions=100,
    encoding_features=2_000,
    encoding_voxels=20,
    compare_epochs=3,
    compare_bootstrap=50,
    visualize_channels=8,
    visualize_steps=2,
    visualize_rss=(8, 32),
    visualize_rss_batch=8,
    visualize_rss_steps=2,
    visualize_patterns=16,
    visualize_command_steps=2,
    visualize_layers=("backbone/conv1",),
)
