"""The converted default model lives in the cache: `cache info` counts it, a damaged one is
one line pointing at `cache clear`, and `cache clear` removes it so the next command rebuilds it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_runner import run_cli as run


def test_a_damaged_default_model_is_reported_and_rebuilt_after_cache_clear(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from xrdiag.core.encoding.embedded_model import embedded_model_dir

    cache = tmp_path / "cache"
    monkeypatch.setenv("XRDIAG_CACHE_DIR", str(cache))
    model = embedded_model_dir()  # converted into this cache
    code, out, _ = run(["cache", "info", "--json"], capsys)
    info = json.loads(out)
    assert code == 0 and info["models"] == 1 and info["models_bytes"] > 10_000_000
    weights = model / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])  # truncated in place
    argv = ["embed", "--langs", "en,fr", "--max-per-domain", "1", "--device", "cpu",
            "--out", str(tmp_path / "e.npz")]  # fmt: skip
    code, _, err = run(argv, capsys)
    assert code == 2 and err.strip().count("\n") == 0, err
    assert "model.safetensors: not a readable safetensors file" in err
    assert "xrdiag cache clear" in err
    code, out, _ = run(["cache", "clear"], capsys)
    assert code == 0 and "removed 1 converted models" in out and not model.exists()
    code, _, err = run(argv, capsys)
    assert code == 0, err
    assert (model / "model.safetensors").stat().st_size > 10_000_000
