"""report.md shows corpus-controlled text (domains, model and directory names) as text:
no live HTML, no links, no emphasis, no broken tables."""

from __future__ import annotations

import csv
import re
from pathlib import Path

from xrdiag.core.evaluate import EvalOptions, run_eval
from xrdiag.report.build import write_report
from xrdiag.report.markdown import md_text

EVIL_DOMAIN = "<img src=x onerror=alert(1)>|*x*"
EVIL_DIR = "[click](javascript:alert(1))"


def test_md_text_escapes_html_and_markdown() -> None:
    text = md_text("<b>a</b> & [l](u) *e* _u_ `c` a|b ~s~ \\ line\nbreak")
    assert text == (
        "&lt;b&gt;a&lt;\\/b&gt; &amp; \\[l\\](u) \\*e\\* \\_u\\_ \\`c\\` a\\|b \\~s\\~ \\\\ "
        "line break"
    ).replace("\\/", "/")


def test_report_md_escapes_domains_and_names(tiny_model_dir: Path, tmp_path: Path) -> None:
    corpus = tmp_path / "evil.csv"
    with corpus.open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["id", "lang", "domain", "text"])
        for i in range(8):
            domain = EVIL_DOMAIN if i % 2 else "news"
            out.writerow([f"s{i}", "en", domain, f"sentence number {i} in english"])
            out.writerow([f"s{i}", "fr", domain, f"phrase numéro {i} en français"])
    ev = tmp_path / EVIL_DIR
    options = EvalOptions(device="cpu", ks=(1,), bootstrap=0, analyses=("retrieval",))
    run_eval(str(tiny_model_dir), str(corpus), ev, options)
    write_report([ev], tmp_path / "rep", formats=("md",))
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "<img" not in md and "&lt;img src=x onerror=alert(1)&gt;" in md
    assert not re.search(r"(?<!\\)\]\(javascript:", md)  # no unescaped link
    assert "\\[click\\](javascript:alert(1))" in md
    assert "\\*x\\*" in md and "\\|" in md
