"""Flags several commands share, declared once so their spelling and help never drift apart."""

from __future__ import annotations

import click

columns_option = click.option(
    "--columns",
    default=None,
    help="Column mapping of an hf: corpus, e.g. id=row_id,lang=language,text=sentence.",
)

dtype_option = click.option(
    "--dtype",
    type=click.Choice(["float32", "bfloat16", "float16"]),
    default="float32",
    show_default=True,
    help="Weights and activations while encoding (float16: GPU only); embeddings stay float32.",
)
