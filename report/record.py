"""report.json: a versioned, validated record of a report, and its loader with schema migrations.

The record holds what a reader needs to trust and reuse the numbers offline: the schema version,
xrdiag's version, the environment (Python, torch, transformers, device, git), each input's model
and corpus fingerprints and seeds, and every result row. Frames are stored column by column;
string columns as levels + codes, so a study's hundreds of thousands of rows stay a few MB.
Floats are written with `repr` (exact round trip); NaN and infinities as "nan", "inf", "-inf".
"""

from __future__ import annotations

import json
import math
import platform
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from xrdiag.errors import UserError

SCHEMA_NAME = "xrdiag-report"
SCHEMA_VERSION = 1
_DTYPES: dict[str, pl.DataType] = {
    "String": pl.String(),
    "Float64": pl.Float64(),
    "Float32": pl.Float32(),
    "Int64": pl.Int64(),
    "Int32": pl.Int32(),
    "UInt32": pl.UInt32(),
    "Boolean": pl.Boolean(),
    "Null": pl.Null(),
}
_NONFINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


@dataclass
class Record:
    """A loaded report.json: its metadata and its frames (results, and a comparison if any)."""

    meta: dict[str, Any]
    results: pl.DataFrame
    comparison: pl.DataFrame | None = None
    extra: dict[str, pl.DataFrame] = field(default_factory=dict)


# --------------------------------------------------------------------------- frames <-> JSON


def _float_out(v: float | None) -> float | str | None:
    if v is None or math.isfinite(v):
        return v
    return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")


def _float_in(v: Any) -> float | None:
    return _NONFINITE[v] if isinstance(v, str) else (None if v is None else float(v))


PACK_ABOVE = 5000  # rows; larger frames store columns packed (zlib + base64 of LE arrays)
_NUMPY = {"Float64": "<f8", "Float32": "<f4", "Int64": "<i8", "Int32": "<i4", "UInt32": "<u4",
          "Boolean": "|u1", "String": "<i4"}  # fmt: skip


def _pack(array: Any) -> str:
    import base64
    import zlib

    return base64.b64encode(zlib.compress(array.tobytes(), 6)).decode("ascii")


def _unpack(text: str, dtype: str, n: int) -> Any:
    import base64
    import zlib

    import numpy as np

    array = np.frombuffer(zlib.decompress(base64.b64decode(text)), dtype=dtype)
    if array.shape[0] != n:
        raise ValueError(f"packed column has {array.shape[0]} values, expected {n}")
    return array


def encode_frame(frame: pl.DataFrame, pack_above: int = PACK_ABOVE) -> dict[str, Any]:
    """A frame as {"n", "columns": [{"name", "dtype", values | levels + codes}]}.

    Above `pack_above` rows each column is `packed`: its values (string codes, -1 for null) as
    a little-endian array, zlib-compressed, base64; `nulls` is packed the same way (1 = null).
    """
    packed = frame.height > pack_above
    columns = []
    for name, dtype in frame.schema.items():
        kind = str(dtype)
        if kind not in _DTYPES:
            raise ValueError(f"report.json cannot hold column {name!r} of type {kind}")
        series = frame[name]
        col: dict[str, Any] = {"name": name, "dtype": kind}
        if kind == "Null":
            pass  # every value is null: nothing to store
        elif kind == "String":
            levels = series.drop_nulls().unique(maintain_order=True).to_list()
            index = {level: i for i, level in enumerate(levels)}
            col["levels"] = levels
            codes = [-1 if v is None else index[v] for v in series.to_list()]
            col["codes"] = codes
        elif packed:
            col["nulls"] = _pack(series.is_null().to_numpy().astype("|u1"))
            col["values"] = _pack(series.fill_null(0).to_numpy().astype(_NUMPY[kind]))
        elif kind.startswith("Float"):
            col["values"] = [_float_out(v) for v in series.to_list()]
        else:
            col["values"] = series.to_list()
        if packed and kind == "String":
            import numpy as np

            col["codes"] = _pack(np.asarray(col["codes"], dtype="<i4"))
        col["encoding"] = "packed" if packed else "plain"
        columns.append(col)
    return {"n": frame.height, "columns": columns}


def _column(col: Mapping[str, Any], kind: str, n: int) -> list[Any]:
    if kind == "Null":
        return [None] * n
    if col.get("encoding", "plain") == "packed":
        if kind == "String":
            levels = list(col["levels"])
            return [None if c < 0 else levels[c] for c in _unpack(col["codes"], "<i4", n).tolist()]
        nulls = _unpack(col["nulls"], "|u1", n).astype(bool).tolist()
        values = _unpack(col["values"], _NUMPY[kind], n).tolist()
        if kind == "Boolean":
            values = [bool(v) for v in values]
        return [None if null else v for v, null in zip(values, nulls, strict=True)]
    if kind == "String":
        levels = list(col["levels"])
        return [None if c is None or c < 0 else levels[int(c)] for c in col["codes"]]
    if kind.startswith("Float"):
        return [_float_in(v) for v in col["values"]]
    return list(col["values"])


def decode_frame(data: Mapping[str, Any], where: str) -> pl.DataFrame:
    """Inverse of `encode_frame`, validating names, dtypes, lengths and codes."""
    try:
        n = int(data["n"])
        out: dict[str, pl.Series] = {}
        for col in data["columns"]:
            name, kind = str(col["name"]), str(col["dtype"])
            if kind not in _DTYPES:
                raise ValueError(f"column {name!r}: unknown dtype {kind!r}")
            values = _column(col, kind, n)
            if len(values) != n:
                raise ValueError(f"column {name!r} has {len(values)} values, expected {n}")
            out[name] = pl.Series(name, values, dtype=_DTYPES[kind])
    except (KeyError, TypeError, IndexError, ValueError) as exc:
        raise UserError(f"{where}: not a valid frame in report.json ({exc})") from None
    return pl.DataFrame(out) if out else pl.DataFrame()


# --------------------------------------------------------------------------- environment


def environment(device: str | None = None) -> dict[str, Any]:
    """Python, platform, package versions (read from metadata, nothing imported), git hash."""
    from importlib.metadata import PackageNotFoundError, version

    from xrdiag.core.provenance import git_hash

    versions: dict[str, str | None] = {}
    for name in ("xrdiag", "torch", "transformers", "numpy", "polars", "scikit-learn"):
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = None
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": versions,
        "device": device,
        "git": git_hash(Path(__file__).resolve().parent.parent),
    }


def build_record(
    inputs: list[dict[str, Any]],
    results: pl.DataFrame,
    comparison: pl.DataFrame | None = None,
    extra: Mapping[str, pl.DataFrame] | None = None,
    device: str | None = None,
) -> dict[str, Any]:
    """The version-1 record: metadata, inputs (fingerprints, seeds, status), frames."""
    env = environment(device)
    record: dict[str, Any] = {
        "schema": SCHEMA_NAME,
        "schema_version": SCHEMA_VERSION,
        "xrdiag_version": env["versions"].get("xrdiag"),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "environment": env,
        "inputs": inputs,
        "results": encode_frame(results),
    }
    if comparison is not None:
        record["comparison"] = encode_frame(comparison)
    if extra:
        record["extra"] = {name: encode_frame(_storable(f)) for name, f in extra.items()}
    return record


def _storable(frame: pl.DataFrame) -> pl.DataFrame:
    """Other integer widths as Int64, floats as Float64, anything else (dates, enums) as text."""
    casts = []
    for name, dtype in frame.schema.items():
        if str(dtype) not in _DTYPES:
            target = (
                pl.Int64 if dtype.is_integer() else pl.Float64 if dtype.is_float() else pl.String
            )
            casts.append(pl.col(name).cast(target))
    return frame.with_columns(casts) if casts else frame


def write_record(record: Mapping[str, Any], path: Path) -> Path:
    """Write report.json (strict JSON: no NaN literals) through a temporary file and a rename."""
    from xrdiag.core.layout.atomic import write_text_atomic

    write_text_atomic(path, json.dumps(record, ensure_ascii=False, allow_nan=False) + "\n")
    return path


# --------------------------------------------------------------------------- loading


def _migrate_0_to_1(data: dict[str, Any]) -> dict[str, Any]:
    """Version 0 (pre-release): {"version": 0, "env": {...}, "rows": [row dicts]}.

    Rows become a column-encoded frame with the long results schema; `env` becomes
    `environment`; inputs were not recorded, so the list is empty.
    """
    from xrdiag.analyses.schema import results_frame

    rows = [{k: v for k, v in r.items() if k != "source"} for r in data.get("rows", [])]
    frame = results_frame(rows)
    return {
        "schema": SCHEMA_NAME,
        "schema_version": 1,
        "xrdiag_version": data.get("xrdiag_version"),
        "created": data.get("created"),
        "environment": data.get("env", {}),
        "inputs": [],
        "results": encode_frame(frame),
        "migrated_from": 0,
    }


MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {0: _migrate_0_to_1}


def _version_of(data: dict[str, Any]) -> int:
    version = data.get("schema_version", data.get("version"))
    if not isinstance(version, int) or isinstance(version, bool):
        raise ValueError("no integer schema_version")
    return version


def migrate(data: dict[str, Any], where: str = "report.json") -> dict[str, Any]:
    """Apply migrations until the record is at SCHEMA_VERSION; refuse newer versions."""
    try:
        version = _version_of(data)
    except ValueError as exc:
        raise UserError(f"{where}: {exc}; expected an xrdiag report record") from None
    if version > SCHEMA_VERSION:
        raise UserError(
            f"{where}: schema_version {version} is newer than this xrdiag reads "
            f"({SCHEMA_VERSION}); upgrade xrdiag"
        )
    while version < SCHEMA_VERSION:
        if version not in MIGRATIONS:
            raise UserError(f"{where}: no migration from schema_version {version}")
        data = MIGRATIONS[version](data)
        version = _version_of(data)
    return data


_REQUIRED = ("schema", "schema_version", "environment", "inputs", "results")


def load_record(path: Path | str) -> Record:
    """Read, migrate and validate a report.json; frames come back with their dtypes."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: unreadable report record ({exc})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a JSON object")
    data = migrate(data, str(path))
    missing = [k for k in _REQUIRED if k not in data]
    if missing or data.get("schema") != SCHEMA_NAME:
        raise UserError(f"{path}: not an xrdiag report record (missing {missing or ['schema']})")
    results = decode_frame(data["results"], f"{path}: results")
    comparison = (
        decode_frame(data["comparison"], f"{path}: comparison") if "comparison" in data else None
    )
    extra = {k: decode_frame(v, f"{path}: {k}") for k, v in (data.get("extra") or {}).items()}
    meta = {k: v for k, v in data.items() if k not in ("results", "comparison", "extra")}
    return Record(meta=meta, results=results, comparison=comparison, extra=extra)
