"""A training config's method in a few letters, for lists and labels: `dann+hybrid`, `pgd`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def method_label(config: Mapping[str, Any]) -> str:
    """The methods a run.toml document switches on, joined by `+`; the objective when none.

    Reads the raw document (not a validated TrainConfig) so that a list of many runs stays
    cheap and a run of an older or newer config still gets a label.
    """

    def table(doc: Any, key: str) -> Mapping[str, Any]:
        value = doc.get(key, {}) if isinstance(doc, Mapping) else {}
        return value if isinstance(value, Mapping) else {}

    parts = []
    robust = table(config, "robust")
    if table(robust, "rs_rp").get("enabled"):
        parts.append("rs-rp")
    if table(robust, "rs_da").get("enabled"):
        parts.append("rs-da")
    adversarial = table(robust, "adversarial")
    if adversarial.get("enabled"):
        parts.append(str(adversarial.get("method", "adv")))
    if table(config, "dann").get("enabled"):
        parts.append("dann")
    batches = table(config, "batches")
    try:
        mixed = any(0 < float(batches.get(k, 1.0)) < 1 for k in ("alpha", "beta"))
    except (TypeError, ValueError):
        mixed = False
    if mixed:
        parts.append("hybrid")
    if not parts:
        parts.append(str(table(config, "objective").get("kind", "contrastive")))
    return "+".join(parts)
