"""report.json: exact round trips (plain and packed), validation, and the version-0 migration."""

from __future__ import annotations

import json
import math
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from xrdiag.analyses.schema import results_frame
from xrdiag.errors import UserError
from xrdiag.report.record import (
    SCHEMA_VERSION,
    build_record,
    decode_frame,
    encode_frame,
    load_record,
    write_record,
)


def tricky_frame(n: int) -> pl.DataFrame:
    """Nulls in every column, NaN and infinities, unicode, floats that need all 17 digits."""
    rows = []
    for i in range(n):
        rows.append({
            "checkpoint": "ckpt-ü" if i % 3 else None, "analysis": "retrieval",
            "metric": "recall@1|cos|none", "layer": None if i % 7 == 0 else i % 13,
            "src_lang": ["en", "fr", "zh"][i % 3], "tgt_lang": None, "domain": "all",
            "value": [1 / 3, math.nan, math.inf, -math.inf, None, 0.1 + 0.2][i % 6],
            "ci_low": 1e-300 * i, "ci_high": None, "n": None if i % 5 == 0 else i,
        })  # fmt: skip
    return results_frame(rows).with_columns(
        pl.Series("flag", [i % 2 == 0 for i in range(n)]), pl.lit(None).alias("empty")
    )


@pytest.mark.parametrize("n", [40, 7000])  # plain JSON lists / packed columns
def test_frames_round_trip_exactly(n: int, tmp_path: Path) -> None:
    frame = tricky_frame(n)
    encoded = encode_frame(frame)
    assert {c["encoding"] for c in encoded["columns"]} == {"plain" if n < 5000 else "packed"}
    path = write_record(build_record([], frame), tmp_path / "report.json")
    json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(f"non-JSON {c}"))
    back = load_record(path)
    assert_frame_equal(back.results, frame)
    assert back.results["value"].to_list()[:6][1] != back.results["value"].to_list()[:6][1]  # NaN
    assert back.results["value"].to_list()[4] is None  # null stays null, not NaN


def test_record_metadata(tmp_path: Path) -> None:
    frame = tricky_frame(5)
    comparison = pl.DataFrame({"metric": ["m"], "delta": [0.0], "significant": [False]})
    inputs = [{"path": "x", "kind": "eval", "seeds": [0], "model_fingerprint": "abc"}]
    path = write_record(build_record(inputs, frame, comparison, device="cpu"), tmp_path / "r.json")
    record = load_record(path)
    assert record.meta["schema_version"] == SCHEMA_VERSION == 1
    assert record.meta["inputs"] == inputs and record.meta["xrdiag_version"]
    env = record.meta["environment"]
    assert env["device"] == "cpu" and env["python"].count(".") == 2
    assert set(env["versions"]) >= {"torch", "transformers", "numpy"}
    assert record.comparison is not None
    assert_frame_equal(record.comparison, comparison)


def test_version_0_is_migrated(tmp_path: Path) -> None:
    rows = [
        {"checkpoint": "m", "analysis": "cka", "metric": "linear_cka", "layer": 2,
         "src_lang": "en", "tgt_lang": "fr", "domain": "all", "value": 0.75, "ci_low": None,
         "ci_high": None, "n": 10},
        {"checkpoint": "m", "analysis": "probe", "metric": "lang_probe_acc", "layer": 2,
         "src_lang": None, "tgt_lang": None, "domain": "all", "value": 0.5, "ci_low": 0.4,
         "ci_high": 0.6, "n": 100},
    ]  # fmt: skip
    old = {"version": 0, "env": {"python": "3.10.0"}, "rows": rows, "created": "2025-01-01"}
    path = tmp_path / "old.json"
    path.write_text(json.dumps(old))
    record = load_record(path)
    assert record.meta["schema_version"] == 1 and record.meta["migrated_from"] == 0
    assert record.meta["environment"] == {"python": "3.10.0"} and record.meta["inputs"] == []
    assert_frame_equal(record.results, results_frame(rows))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"schema_version": 99}, "newer than this xrdiag reads"),
        ({"schema_version": "1"}, "no integer schema_version"),
        ({"schema_version": 1, "schema": "xrdiag-report"}, "not an xrdiag report record"),
        ([1, 2], "expected a JSON object"),
    ],
)
def test_invalid_records_are_user_errors(data: object, message: str, tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(UserError, match=message):
        load_record(path)


def test_corrupt_frames_are_user_errors() -> None:
    good = encode_frame(tricky_frame(4))
    short = json.loads(json.dumps(good))
    short["columns"][0]["codes"] = short["columns"][0]["codes"][:2]
    with pytest.raises(UserError, match="expected 4"):
        decode_frame(short, "r.json")
    bad_type = json.loads(json.dumps(good))
    bad_type["columns"][0]["dtype"] = "Object"
    with pytest.raises(UserError, match="unknown dtype"):
        decode_frame(bad_type, "r.json")
    bad_code = json.loads(json.dumps(good))
    bad_code["columns"][0]["codes"] = [9, 9, 9, 9]
    with pytest.raises(UserError, match="not a valid frame"):
        decode_frame(bad_code, "r.json")
