"""A run.json whose ``num_patterns`` is absurd (2**63, the fingerprint kept) is planned from
what the manifest holds: render and analyze succeed with a warning, report (bounded by its
default 0-99) and the viewer's /api/runs succeed; none allocates by the count or prints a
traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from externals import need_keras

from pipeline.cli import main

ROOT = Path(__file__).resolve().parents[1]
HUGE = 2**63
LIMIT = 4 << 30  # address space of the child: far below any plan sized by the count

# Each consumer in one child process under RLIMIT_AS; one JSON line of what each returned.
CHILD = """
import json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit}))
from pipeline.cli import main
from pipeline.viewer import Api
from pathlib import Path
run, out = sys.argv[1], Path(sys.argv[2])
codes = {{}}
for name, argv in (
    ("render", ["render", run, "--workers", "1"]),
    ("analyze", ["analyze", run, "--workers", "1", "--no-pictures"]),
    ("report", ["report", run, "--out", str(out / "report")]),
):
    sys.stderr.write("== " + name + "\\n")
    codes[name] = main(["-q", *argv])
resp = Api([Path(run)]).handle("GET", "/api/runs")
info = json.loads(resp.body)["runs"][0]
codes["api"] = [resp.status, info["num_patterns"], info["patterns_ready"]]
print(json.dumps(codes))
"""


def captured_run(tmp_path: Path) -> Path:
    need_keras()
    run = tmp_path / "run"
    argv = ["-q", "capture", "--model", "builtin:seed", "--patterns", "random:5"]
    assert main([*argv, "--batch-size", "2", "--out", str(run), "--no-architecture"]) == 0
    info = json.loads((run / "run.json").read_text())
    assert info["num_patterns"] == 5 and info["fingerprint"]
    info["num_patterns"] = HUGE  # the fingerprint stays as captured
    (run / "run.json").write_text(json.dumps(info))
    return run


def test_an_absurd_pattern_count_is_planned_from_the_manifest(tmp_path: Path) -> None:
    run = captured_run(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg"}
    proc = subprocess.run(
        [sys.executable, "-c", CHILD.format(limit=LIMIT), str(run), str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and "MemoryError" not in proc.stderr, proc.stderr
    codes = json.loads(proc.stdout.strip().splitlines()[-1])
    assert codes == {"render": 0, "analyze": 0, "report": 0, "api": [200, HUGE, 5]}, codes
    said = dict(part.split("\n", 1) for part in proc.stderr.split("== ")[1:])
    held = f"counts {HUGE} pattern(s), its manifest holds data for 5"
    assert held in said["render"], said
    assert f"patterns 0..4 of {HUGE}" in said["analyze"], said
    # What was drawn and written covers the five captured patterns, and nothing beyond.
    assert sorted(p.name for p in (run / "render").glob("pattern-*")) == [
        f"pattern-{i}" for i in range(5)
    ]
    # The report's default 0-99 bounds it: patterns 5.. are shown as not captured yet.
    static = (tmp_path / "report" / "data" / "index.js").read_text()
    assert '"patterns":[' + ",".join(map(str, range(100))) + "]" in static
    exported = {
        int(p.stem) for p in (tmp_path / "report" / "data").rglob("*.js") if p.stem.isdigit()
    }
    assert exported == set(range(5))
