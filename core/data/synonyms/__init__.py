"""The shipped English synonym lexicon (counter-fitted neighbours, Apache-2.0) and its loader.

Used by RS-DA training (`core/training/robust.py`), the synonym noise of the robustness
analysis and the paraphrase task: they all read it through `load_lexicon`, never by path.
"""

from __future__ import annotations

import json
from pathlib import Path

from xrdiag.errors import UserError

DEFAULT_LEXICON = Path(__file__).parent / "counterfitted_neighbors.json"


def load_lexicon(name: str | Path = "default") -> dict[str, list[str]]:
    """The synonym lexicon: `default` is the shipped one, anything else a JSON file path.

    The file is a JSON object word -> list of neighbour words (lower case).
    """
    path = DEFAULT_LEXICON if str(name) == "default" else Path(name).expanduser()
    label = f"robust.rs_da.lexicon: {path}"
    if not path.is_file():
        raise UserError(f"{label}: no such file (expected a JSON object word -> [neighbours])")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{label}: not valid UTF-8 JSON ({exc})") from None
    if not isinstance(data, dict):
        raise UserError(f"{label}: expected a JSON object word -> [neighbours]")
    for word, neighbours in data.items():
        if not isinstance(neighbours, list) or not all(isinstance(n, str) for n in neighbours):
            raise UserError(f"{label}: key {word!r}: expected a list of strings")
    return data
