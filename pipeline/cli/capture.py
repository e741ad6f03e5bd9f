"""``passage capture``: pass patterns through a model and store the layer outputs."""

from __future__ import annotations

import argparse

from .. import config as cfgmod
from ..capturing.framework import use_tensorflow_backend
from ..config import Config
from .common import add_dask, add_select, add_unsafe, cluster, load_config, select_config


def add_parsers(sub: argparse._SubParsersAction, after: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "capture", help="pass patterns through a model and store layer outputs", parents=[after]
    )
    p.set_defaults(handler=cmd_capture)
    p.add_argument("--config", help="TOML config file (flags override it)")
    p.add_argument("--model", help="model spec: file.keras, module:function or builtin:NAME")
    p.add_argument(
        "--patterns",
        help="pattern spec: file.npy, file.npz[:key], IMAGE_FOLDER/, module:function, "
        "random:N[:SEED]; several inputs: an .npz with one key per input, or one spec per "
        "input separated by commas",
    )
    p.add_argument("--out", help="run folder to write")
    p.add_argument("--format", choices=cfgmod.FORMATS, help="data file format (default npy)")
    p.add_argument("--dtype", choices=cfgmod.DTYPES, help="stored float type (default float32)")
    p.add_argument(
        "--batch-size",
        type=int,
        help="patterns per forward pass and data file (default 0: by --batch-mb)",
    )
    p.add_argument(
        "--batch-mb",
        type=int,
        help="with batch size 0, the largest power of two whose captured outputs fit in this "
        "many MiB (default 64)",
    )
    p.add_argument(
        "--limit", type=int, help="capture only the first N patterns (needed for endless datasets)"
    )
    add_select(p)
    p.add_argument(
        "--keep-inputs",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="store the model's inputs with the run; render draws them first (default: only "
        "for image-folder patterns)",
    )
    p.add_argument(
        "--preprocess",
        metavar="NAME|module:function",
        help="feed image-folder patterns as the model expects them: a Keras Applications "
        "family (resnet50, vgg16, mobilenet_v2, efficientnet, convnext, inception_v3, ...: its "
        "preprocess_input of the 0..255 pixels) or module:function / path/file.py:function of "
        "a float32 batch (n, H, W, C) in 0..255 (default: pixels in [0, 1])",
    )
    p.add_argument(
        "--resize",
        choices=cfgmod.RESIZES,
        help="bring images to the input size: squash (stretch, the default) or crop (shorter "
        "side to size, then the centre)",
    )
    p.add_argument("--no-architecture", action="store_true", help="do not draw the model")
    p.add_argument("--overwrite", action="store_true", help="replace a different run in --out")
    add_unsafe(p)
    p.add_argument(
        "--buffered-io",
        action="store_true",
        help="write large data files through the page cache instead of direct I/O",
    )
    p.add_argument("--fsync", action="store_true", help="fsync every file (survives power loss)")
    add_dask(p)


def capture_config(args: argparse.Namespace) -> Config:
    """The config file of ``args`` with the capture and selection flags over it."""
    cfg = load_config(args.config)
    cfg = cfgmod.override(
        cfg,
        "capture",
        model=args.model,
        patterns=args.patterns,
        out=args.out,
        format=args.format,
        dtype=args.dtype,
        batch_size=args.batch_size,
        batch_mb=args.batch_mb,
        limit=args.limit,
        architecture=False if args.no_architecture else None,
        overwrite=True if args.overwrite else None,
        unsafe=True if args.unsafe else None,
        direct_io=False if args.buffered_io else None,
        fsync=True if args.fsync else None,
        keep_inputs=args.keep_inputs,
        preprocess=args.preprocess,
        resize=args.resize,
    )
    return select_config(cfg, args)


def cmd_capture(args: argparse.Namespace) -> int:
    use_tensorflow_backend()  # before anything imports Keras (a model or pattern factory too)
    cfg = capture_config(args)
    if args.dask or cfg.dask.address:
        from ..distributed import capture as capture_on
        from ..distributed.capture import check_capture

        check_capture(cfg)
        with cluster(cfg, args) as pool:
            capture_on(cfg, pool, quiet=args.quiet)
    elif cfg.train is not None:
        from ..capturing.training.trainer import train_and_capture

        train_and_capture(cfg, quiet=args.quiet)
    else:
        from ..capturing.stream import capture

        capture(cfg, quiet=args.quiet)
    return 0
