"""Loading an encoder's weights so that a wrong file is an error, never a random layer.

`AutoModel.from_pretrained` fills any weight it cannot find with a random initialisation and
only logs it: a config that promises 13 layers with weights for 12 would evaluate a random
13th layer and report its numbers. Here a weight the model needs and the files lack, a weight
of the model's own modules that it does not have (an extra layer), or a shape that differs
(another hidden size) is a one-line UserError. Two kinds are tolerated, because xrdiag never
uses them: the pooler (xrdiag pools hidden states itself; many checkpoints ship none) and the
heads of a pre-training checkpoint (`cls.*`, `lm_head.*`), which are not modules of the encoder.

Unreadable safetensors (empty, truncated, zeroed, a corrupt header) are checked before loading,
so that their error names the file instead of surfacing as a Rust traceback.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from xrdiag.errors import UserError, library_failure

# Parameters an encoder may lack or carry without changing any embedding xrdiag computes.
TOLERATED_MISSING = ("pooler.",)
TOLERATED_UNEXPECTED_SUFFIXES = ("position_ids",)  # a buffer older checkpoints saved


def first_line(exc: BaseException) -> str:
    """The gist of an exception in one line (a line ending in ':' takes the next one along)."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    return f"{lines[0]} {lines[1]}" if lines[0].endswith(":") and len(lines) > 1 else lines[0]


def check_safetensors(model_dir: Path, hint: str = "") -> None:
    """Every `*.safetensors` file of a local model directory has a readable header.

    The header is what a truncated, zeroed or empty file breaks; its tensors' byte ranges must
    also lie inside the file (safetensors checks that when it opens the file).
    """
    from safetensors import safe_open

    for file in sorted(Path(model_dir).glob("*.safetensors")):
        try:
            if file.stat().st_size == 0:
                raise ValueError("empty file")
            with safe_open(str(file), framework="numpy") as handle:
                list(handle.keys())
        except UserError:
            raise
        except BaseException as exc:  # noqa: BLE001 - safetensors raises its own Rust error types
            if not library_failure(exc):
                raise
            raise UserError(
                f"{file}: not a readable safetensors file ({first_line(exc)}){hint}"
            ) from None


def _shorten(keys: Iterable[str], n: int = 3) -> str:
    keys = sorted(keys)
    shown = ", ".join(keys[:n])
    return shown + (f" and {len(keys) - n} more" if len(keys) > n else "")


def check_loading_info(model: Any, info: Mapping[str, Any], name: str) -> None:
    """Raise a UserError when the weights did not fill the model exactly (see the module doc).

    `info` is what `from_pretrained(..., output_loading_info=True)` returns beside the model.
    """
    prefix = f"{getattr(model, 'base_model_prefix', '')}."
    own = {child for child, _ in model.named_children()}

    def strip(key: str) -> str:
        return key[len(prefix) :] if prefix != "." and key.startswith(prefix) else key

    missing = [
        k for k in info.get("missing_keys", []) if not strip(k).startswith(TOLERATED_MISSING)
    ]
    unexpected = [
        k
        for k in info.get("unexpected_keys", [])
        if strip(k).split(".", 1)[0] in own and not k.endswith(TOLERATED_UNEXPECTED_SUFFIXES)
    ]
    mismatched = sorted(info.get("mismatched_keys", []), key=lambda m: str(m[0]))
    if mismatched:
        key, found, wanted = mismatched[0]
        raise UserError(
            f"{name}: weight {key} has shape {list(found)} but config.json makes it "
            f"{list(wanted)} ({len(mismatched)} weights differ; a hidden size or vocabulary "
            "that does not match the weights?)"
        )
    if missing:
        raise UserError(
            f"{name}: config.json needs weights the files lack ({len(missing)}: "
            f"{_shorten(missing)}); expected weights for every layer of the config"
        )
    if unexpected:
        raise UserError(
            f"{name}: the weight files hold weights the config has no place for "
            f"({len(unexpected)}: {_shorten(unexpected)}); expected config.json to match them"
        )
    errors = [e for e in info.get("error_msgs", []) if e]
    if errors:
        raise UserError(f"{name}: cannot load the weights: {str(errors[0]).splitlines()[0]}")


def load_encoder(source: str, name: str, hint: str = "") -> Any:
    """`AutoModel.from_pretrained(source)` (safetensors only, no remote code), checked as above.

    This is the one way xrdiag loads an encoder's weights: evaluation does, and training should.
    """
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    if Path(source).is_dir():
        check_safetensors(Path(source), hint)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # its load report would repeat, at length, our one line
    try:
        model, info = AutoModel.from_pretrained(
            source,
            use_safetensors=True,
            trust_remote_code=False,
            output_loading_info=True,
            ignore_mismatched_sizes=True,  # reported below as one line, not a traceback
        )
    except (OSError, ValueError, RuntimeError) as exc:
        raise UserError(f"{name}: cannot load model: {first_line(exc)}{hint}") from None
    finally:
        hf_logging.set_verbosity(verbosity)
    check_loading_info(model, info, name)
    return model


def _marker(fingerprint: str) -> Path:
    from xrdiag.cache.paths import default_cache_dir

    return default_cache_dir() / "verified-models" / fingerprint


def is_verified(fingerprint: str) -> bool:
    """Whether weights with this fingerprint once loaded cleanly (see `mark_verified`)."""
    return _marker(fingerprint).is_file()


def mark_verified(fingerprint: str) -> None:
    """Remember that these weights loaded cleanly, so cached embeddings of them can be trusted.

    Embeddings cached before weights were checked at all (or by another program) do not
    vouch for the weights: a fully cached call loads the model once when this marker is absent.
    """
    marker = _marker(fingerprint)
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
    except OSError:
        pass  # an unwritable cache: check again next time
