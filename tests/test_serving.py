"""fer_hf.serving.limit_malloc_arenas: applied on glibc, and not when the user chose otherwise. Its effect
(flat server memory under 20 concurrent clients) is measured by benchmarks/concurrency.py --rounds."""

import platform
import subprocess
import sys

import pytest

from fer_hf.serving import limit_malloc_arenas

GLIBC = platform.libc_ver()[0] == "glibc"


@pytest.mark.skipif(not GLIBC, reason="glibc only")
def test_arenas_capped_on_glibc(monkeypatch):
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    monkeypatch.delenv("FER_HF_MALLOC_ARENAS", raising=False)
    assert limit_malloc_arenas() is True
    assert limit_malloc_arenas(4) is True


def test_user_choices_win(monkeypatch):
    monkeypatch.setenv("FER_HF_MALLOC_ARENAS", "0")
    assert limit_malloc_arenas() is False
    monkeypatch.delenv("FER_HF_MALLOC_ARENAS")
    monkeypatch.setenv("MALLOC_ARENA_MAX", "8")
    assert limit_malloc_arenas() is False


def test_bad_values(monkeypatch):
    monkeypatch.setenv("FER_HF_MALLOC_ARENAS", "two")
    with pytest.raises(ValueError, match="FER_HF_MALLOC_ARENAS must be an integer"):
        limit_malloc_arenas()
    with pytest.raises(ValueError, match=">= 0"):
        limit_malloc_arenas(-1)


@pytest.mark.skipif(not GLIBC, reason="glibc only")
def test_app_module_caps_arenas_before_gradio_starts(tmp_path):
    """Importing app.py (what `python app.py` and a Space run) applies the cap first: the log line is there."""
    code = ("import logging, sys; logging.basicConfig(level=logging.INFO, stream=sys.stdout); "
            "sys.path.insert(0, sys.argv[1]); import app")
    from conftest import REPO

    env = {k: v for k, v in __import__("os").environ.items() if k not in ("MALLOC_ARENA_MAX", "FER_HF_MALLOC_ARENAS")}
    result = subprocess.run([sys.executable, "-c", code, str(REPO)], capture_output=True, text=True, cwd=tmp_path,
                            env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "glibc malloc arenas capped at 2" in result.stdout + result.stderr
