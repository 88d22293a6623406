"""benchmarks/long_video.py end to end on a tiny video: the three paths (Video tab function, CLI, analyze_video),
each in its own process, measured and reported (markdown + JSON)."""

import json
import os
import subprocess
import sys

import pytest
from conftest import REPO, SAMPLES

FACES = ("happy-baby.jpeg", "surprised.jpeg", "angry.jpg")
pytestmark = pytest.mark.skipif(not all((SAMPLES / name).is_file() for name in FACES),
                                reason=f"sample photos not found in {SAMPLES}")


def test_long_video_script_measures_every_path_in_its_own_process(tmp_path):
    output = tmp_path / "long_video.md"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FER_HF_MAX_VIDEO_")}
    env["HF_HUB_OFFLINE"] = "1"
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "long_video.py"), "--minutes", "0.02", "--fps", "10",
         "--width", "640", "--height", "360", "--sample-fps", "1", "--threads", "1", "--samples", str(SAMPLES),
         "--workdir", str(tmp_path / "work"), "--output", str(output)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((tmp_path / "long_video.json").read_text())
    assert list(report["paths"]) == ["video-tab", "cli", "function"]
    assert report["short_check"] and report["video"]["frames"] == 12
    assert report["limits"] == {"max_mb": 500, "max_seconds": 600, "max_pixels": 1920 * 1080, "max_frames": 3600}
    commands = set()
    for kind, result in report["paths"].items():
        assert result["returncode"] == 0 and "error" not in result, (kind, result)
        assert result["frames_sampled"] == 2 and result["rows"] >= 2, kind
        assert result["outputs"]["annotated video"]["frames_decoded"] == 2, kind
        memory = result["memory"]
        assert memory["start_marked"], kind
        assert 100 < memory["rss_start_mb"] <= memory["peak_mb"] < 10_000, kind
        assert result["ru_maxrss_mb"] > 100 and result["analysis_s"] > 0, kind
        commands.add(result["command"])
    assert len(commands) == 3
    tab = report["paths"]["video-tab"]
    assert tab["csv_rows"] == tab["rows"] and set(tab["outputs"]) == {"annotated video", "timeline CSV",
                                                                       "timeline JSON", "plot"}
    assert all(o["mb"] > 0 for o in tab["outputs"].values())
    text = output.read_text()
    assert "short check, not the 10-minute benchmark" in text
    assert "the defaults: no FER_HF_MAX_VIDEO_* variable is set" in text
    assert sum(line.startswith(("| video-tab |", "| cli |", "| function |")) for line in text.splitlines()) == 3
