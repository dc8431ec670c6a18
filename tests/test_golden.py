"""The golden figures (tests/golden/values.json) hold: a refactor that changes a loss or a detection fails here."""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

from tests.golden.golden_values import REPRODUCIBLE_ENV, VALUES

TOLERANCE = 1e-6  # relative, with the same as an absolute floor for values near zero


def _differences(expected, got, where: str) -> list[str]:
    if isinstance(expected, dict):
        if set(expected) != set(got):
            return [f"{where}: keys {sorted(got)} != {sorted(expected)}"]
        return [d for k in expected for d in _differences(expected[k], got[k], f"{where}.{k}")]
    if isinstance(expected, list):
        if len(expected) != len(got):
            return [f"{where}: {len(got)} items != {len(expected)}"]
        return [d for i, (e, g) in enumerate(zip(expected, got)) for d in _differences(e, g, f"{where}[{i}]")]
    if isinstance(expected, float) or isinstance(got, float):
        close = math.isclose(got, expected, rel_tol=TOLERANCE, abs_tol=TOLERANCE)
        return [] if close else [f"{where}: {got} != {expected}"]
    return [] if expected == got else [f"{where}: {got!r} != {expected!r}"]


def test_losses_and_short_trained_detections_hold_the_golden_values():
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, **REPRODUCIBLE_ENV}
    done = subprocess.run([sys.executable, str(root / "tests" / "golden" / "golden_values.py")], cwd=root, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    expected = json.loads(VALUES.read_text())["figures"]
    differences = _differences(expected, got, "golden")
    assert not differences, "\n".join(differences[:20])


def test_the_comparison_catches_a_changed_value():
    expected = {"m": {"losses": {"a": 1.0}, "detections": [{"count": 2, "scores": [0.5]}]}}
    assert _differences(expected, {"m": {"losses": {"a": 1.000002}, "detections": [{"count": 2, "scores": [0.5]}]}}, "g")
    assert _differences(expected, {"m": {"losses": {"a": 1.0}, "detections": [{"count": 3, "scores": [0.5]}]}}, "g")
    assert not _differences(expected, {"m": {"losses": {"a": 1.0000004}, "detections": [{"count": 2, "scores": [0.5]}]}},
                            "g")
