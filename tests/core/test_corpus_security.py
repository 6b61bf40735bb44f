"""A gettext tree is read inside itself: a catalog linked from outside the corpus directory is
refused without reading it (an error quoting its first bytes would leak any readable file)."""

from __future__ import annotations

from pathlib import Path

import pytest

from xrdiag.core.corpus import check_corpus, load_corpus
from xrdiag.errors import UserError

PO = 'msgid "Open"\nmsgstr "Ouvrir"\n\nmsgid "Save"\nmsgstr "Enregistrer"\n'


def tree(root: Path) -> Path:
    cat = root / "tree" / "locale" / "fr" / "LC_MESSAGES" / "app.po"
    cat.parent.mkdir(parents=True)
    cat.write_text(PO)
    return root / "tree"


def test_a_catalog_linked_from_outside_is_refused_unread(tmp_path: Path) -> None:
    corpus = tree(tmp_path)
    secret = tmp_path / "secret.txt"
    secret.write_text("SECRET-TOKEN-0123456789\n")
    link = corpus / "locale" / "de" / "LC_MESSAGES" / "app.po"
    link.parent.mkdir(parents=True)
    link.symlink_to(secret)
    with pytest.raises(UserError) as info:
        load_corpus(corpus)
    text = str(info.value)
    assert "leads out of the corpus directory" in text and "locale/de/LC_MESSAGES/app.po" in text
    assert "SECRET" not in text and str(secret) not in text
    assert all("SECRET" not in p for p in check_corpus(corpus))


def test_a_link_inside_the_tree_is_read(tmp_path: Path) -> None:
    corpus = tree(tmp_path)
    link = corpus / "locale" / "fr_CA" / "LC_MESSAGES" / "app.po"
    link.parent.mkdir(parents=True)
    link.symlink_to(corpus / "locale" / "fr" / "LC_MESSAGES" / "app.po")
    assert "fr-CA" in load_corpus(corpus).langs
