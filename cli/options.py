"""Flags several commands share, declared once so their spelling and help never drift apart."""

from __future__ import annotations

import click

columns_option = click.option(
    "--columns",
    default=None,
    help="Column mapping of an hf: corpus, e.g. id=row_id,lang=language,text=sentence.",
)
