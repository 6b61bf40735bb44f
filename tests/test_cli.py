"""The command line as a user drives it: real files, real exit codes, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from cli_runner import run_cli as run

from xrdiag.core.corpus import load_corpus
from xrdiag.core.encoding.embedding import load_embeddings
from xrdiag.core.encoding.encoder import Encoder


def test_help_lists_commands() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "xrdiag", "--help"], capture_output=True, text=True, check=True
    )
    for command in ("corpus", "embed", "eval", "train", "cache"):
        assert command in done.stdout


def test_corpus_info_default_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["corpus", "info", "default", "--json"], capsys)
    assert code == 0
    info = json.loads(out)
    assert info["n_ids"] == 3071
    assert len(info["langs"]) == 18
    assert info["alignment_completeness"] == 3066 / 3071  # es-419's five placeholders dropped
    assert info["problems"] == ["es-419: present for 3066 of 3071 ids"]


def test_corpus_info_lists_problems_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("id,lang,text\n1,en,hello\n2,english,hi\n")
    code, out, _ = run(["corpus", "info", str(bad)], capsys)
    assert code == 2
    assert "line 3" in out and "'lang'" in out


def test_user_error_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["embed", "--corpus", str(tmp_path / "missing.jsonl")], capsys)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("xrdiag: error: ")
    assert "missing.jsonl" in err
    assert "Traceback" not in err + out


def test_embed_writes_what_the_encoder_computes(
    tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_file = tmp_path / "emb.npz"
    args = [
        "embed", "--model", str(tiny_model_dir), "--langs", "en,fr,zh",
        "--domains", "news", "--layers", "0,2", "--out", str(out_file), "--json",
    ]  # fmt: skip
    code, out, _ = run(args, capsys)
    assert code == 0, out
    summary = json.loads(out)
    assert summary["rows"] == 88 * 3 and summary["cached_layers"] == []
    layers, meta, header = load_embeddings(out_file)
    assert sorted(layers) == [0, 2] and meta.height == 264
    corpus = load_corpus("default").filter(langs="en,fr,zh", domains="news")
    assert meta["id"].to_list() == corpus.frame["id"].to_list()
    want = Encoder(str(tiny_model_dir), device="cpu").encode(corpus.frame["text"].to_list(), "0,2")
    np.testing.assert_allclose(layers[0], want[0], atol=1e-5)
    np.testing.assert_allclose(layers[2], want[1], atol=1e-5)
    assert header["corpus_fingerprint"] == corpus.fingerprint()
    # The second run is served from the cache, with identical arrays.
    code, out, _ = run(args, capsys)
    assert json.loads(out)["cached_layers"] == [0, 2]
    again, _, _ = load_embeddings(out_file)
    assert np.array_equal(again[2], layers[2])


def test_cache_info_and_clear(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setenv("XRDIAG_CACHE_DIR", str(cache))  # --cache-dir sets it; restored after
    code, out, _ = run(["--cache-dir", str(cache), "cache", "info", "--json"], capsys)
    assert code == 0 and json.loads(out)["entries"] == 0
    code, out, _ = run(["--cache-dir", str(cache), "cache", "clear"], capsys)
    assert code == 0 and "removed 0 entries" in out


# `xrdiag --help` imports none of these: commands import their engines when they run.
HEAVY = ("textual", "torch", "transformers", "sklearn", "umap", "scipy", "numba", "polars",
         "numpy")  # fmt: skip


def test_cli_starts_without_heavy_imports() -> None:
    """`xrdiag --help` loads no heavy library: commands import their engines when they run.

    The CLI registers the thin command modules of the views (report, ui), never their screens.
    """
    code = (
        "import sys; import xrdiag.cli;"
        f"bad = [m for m in sys.modules if m.split('.')[0] in {HEAVY!r}"
        " or m.startswith(('xrdiag.tui.screens', 'xrdiag.tui.app', 'xrdiag.report.html'))];"
        "print(bad)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_corpus_info_shows_tables_and_warnings_of_a_valid_corpus(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A corpus that loads but has warnings (an id missing in one language) shows its table
    and the warnings, exit 0; a path with rich markup characters is printed as it is."""
    folder = tmp_path / "odd [/] name"
    folder.mkdir(parents=True)  # "[" then "] name": the path reads "odd [/] name"
    good = folder / "c.csv"
    good.write_text("id,lang,text\n1,en,hello\n1,fr,bonjour\n2,en,bye\n")
    code, out, _ = run(["corpus", "info", str(good)], capsys)
    assert code == 0
    flat = " ".join(out.split())  # rich wraps at the terminal's width
    assert "odd [/] name" in flat
    assert "sentences per language x domain" in flat
    assert "warning(s)" in flat and "fr: present for 1 of 2 ids" in flat
