"""The README's viewer screenshots, taken by the test browser (Chromium through Playwright).

``python -m bench.screenshots [--out docs/images] [--work DIR]`` captures the article's run
(``configs/seed.toml``: builtin:seed, one random pattern) and a short training run (as
``configs/training.toml``, 3 epochs), serves both on 127.0.0.1 and writes
``viewer-pattern.png`` (the pattern view) and ``viewer-epochs.png`` (the epoch view with the
metrics curve) at 1280x800. With ``--units RUN`` (a run ``passage visualize`` filled, e.g.
``runs/training`` after ``make visualize CONFIG=configs/training.toml``) it writes only
``viewer-unit.png``: the unit page of ``--unit LAYER:CHANNEL`` at its last visualized epoch.
"""

from __future__ import annotations

import argparse
import re
import tempfile
from pathlib import Path

from pipeline.cli import main as passage

from .browser import find_chromium, playwright_missing

ROOT = Path(__file__).resolve().parent.parent
READY = "() => document.body.dataset.state === 'ready'"  # a function: the viewer's CSP bars eval


def config_copy(name: str, out: Path, work: Path, epochs: int | None = None) -> Path:
    """``configs/<name>.toml`` with its run written to ``out`` (and fewer epochs)."""
    text = (ROOT / "configs" / f"{name}.toml").read_text()
    text = re.sub(r"(?m)^out = .*$", f'out = "{out.as_posix()}"', text)
    if epochs is not None:
        text = re.sub(r"(?m)^epochs = \d+", f"epochs = {epochs}", text)
    path = work / f"{name}.toml"
    path.write_text(text)
    return path


def capture_runs(work: Path) -> tuple[Path, Path]:
    seed, training = work / "seed", work / "training"
    for name, out, epochs in (("seed", seed, None), ("training", training, 3)):
        if not (out / "manifest.jsonl").exists():
            config = config_copy(name, out, work, epochs)
            if passage(["capture", "-q", "--config", str(config)]) != 0:
                raise SystemExit(f"capture of {name} failed")
    return seed, training


def shoot(runs: list[Path], hash_: str, path: Path, size: tuple[int, int] = (1280, 800)) -> None:
    from playwright.sync_api import sync_playwright

    from pipeline.viewer.server import start

    server, thread, url = start(runs, "127.0.0.1", 0)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=find_chromium(), headless=True)
            page = browser.new_page(viewport={"width": size[0], "height": size[1]})
            page.goto(f"{url}/{hash_}")
            page.wait_for_function(READY, timeout=30_000)
            page.mouse.move(0, 0)
            page.screenshot(path=str(path))
            browser.close()
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    print(f"wrote {path}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "images"))
    parser.add_argument("--work", default=None, help="keep the runs here (default: a temp dir)")
    parser.add_argument("--units", default=None, help="a visualized run: its unit page too")
    parser.add_argument("--unit", default="dense_2:13", help="LAYER:CHANNEL of that page")
    args = parser.parse_args(argv)
    why = playwright_missing()
    if why is not None:  # before the captures, which take a while
        parser.error(f"no browser to take the screenshots with: {why}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.units:
        shoot([Path(args.units)], f"#unit={args.unit}", out / "viewer-unit.png", (1280, 1060))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work or tmp)
        work.mkdir(parents=True, exist_ok=True)
        seed, training = capture_runs(work)
        shoot([seed], "#run=0&pattern=0&view=pattern", out / "viewer-pattern.png")
        shoot([training], "#run=0&pattern=5&epoch=2&view=pattern", out / "viewer-epochs.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
