"""`xrdiag cache info|clear`: the embedding and model cache."""

from __future__ import annotations

import json

import click


@click.group()
def cache() -> None:
    """The embedding cache and the converted models."""


@cache.command("info")
@click.option("--json", "as_json", is_flag=True)
def cache_info(as_json: bool) -> None:
    """Where the cache is, how many entries and bytes it holds, and the converted models."""
    from xrdiag.cache.models import models_info
    from xrdiag.cache.store import ArrayStore

    info = ArrayStore().info()
    info["root"] = str(info["root"])
    info.update(models_info())
    if as_json:
        click.echo(json.dumps(info, indent=2))
    else:
        for key, value in info.items():
            click.echo(f"{key}: {value}")


@cache.command("clear")
def cache_clear() -> None:
    """Remove every cached embedding and converted model (rebuilt on next use)."""
    from xrdiag.cache.models import clear_models
    from xrdiag.cache.paths import models_dir
    from xrdiag.cache.store import ArrayStore

    store = ArrayStore()
    removed = store.clear()
    click.echo(f"removed {removed} entries from {store.root}")
    click.echo(f"removed {clear_models()} converted models from {models_dir()}")
