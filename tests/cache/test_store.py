"""Tests for the content-addressed array store: round trips, verification, keys, LRU, races."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
from pathlib import Path

import numpy as np
import pytest

from xrdiag.cache.store import (
    MAGIC,
    ArrayStore,
    CacheCorruptionWarning,
    cache_key,
)
from xrdiag.errors import UserError


def sample_arrays(seed: int = 0) -> dict[str, np.ndarray]:
    """Several dtypes and shapes, 0-length and 3-D included."""
    rng = np.random.default_rng(seed)
    return {
        "emb": rng.standard_normal((7, 5)).astype(np.float32),
        "ids": rng.integers(-(2**40), 2**40, size=11, dtype=np.int64),
        "mask": rng.random((3, 4)) > 0.5,
        "cube": rng.standard_normal((2, 3, 4)),
        "empty": np.zeros((0, 16), dtype=np.float32),
        "empty3": np.zeros((2, 0, 3), dtype=np.int64),
        "scalar": np.array(3.5, dtype=np.float16),
        "big_endian": np.arange(6, dtype=">i4").reshape(2, 3),
        "half": np.arange(9, dtype=np.uint8),
    }


@pytest.fixture
def store(tmp_path: Path) -> ArrayStore:
    return ArrayStore(tmp_path / "cache", max_bytes=1 << 30)


def assert_identical(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    assert list(got) == list(want)
    for name, arr in want.items():
        assert got[name].dtype == arr.dtype, name
        assert got[name].shape == arr.shape, name
        assert got[name].tobytes() == arr.tobytes(), name


def entry_file(store: ArrayStore, key: str) -> Path:
    path = store.path(key)
    assert path.is_file()
    return path


# -- round trips -------------------------------------------------------------------------


def test_hit_returns_identical_writeable_arrays(store: ArrayStore) -> None:
    arrays = sample_arrays()
    key = cache_key(model="m", corpus="c")
    assert store.get(key) is None
    assert key not in store
    store.put(key, arrays, meta={"model": "m", "layers": [0, 12]})
    assert key in store
    got = store.get(key)
    assert got is not None
    assert_identical(got, arrays)
    for arr in got.values():
        assert arr.flags.c_contiguous and arr.flags.writeable
    got["emb"][0, 0] = 99.0  # writing into one array leaves the others and the file alone
    assert_identical({"ids": got["ids"]}, {"ids": arrays["ids"]})
    assert_identical(store.get(key), arrays)


def test_non_contiguous_input_is_stored_in_c_order(store: ArrayStore) -> None:
    base = np.arange(24, dtype=np.float32).reshape(4, 6)
    view = base[:, ::2].T  # neither C- nor F-contiguous
    store.put("ab12", {"v": view})
    got = store.get("ab12")["v"]
    np.testing.assert_array_equal(got, view)
    assert got.flags.c_contiguous


def test_file_layout_is_raw_aligned_bytes(store: ArrayStore) -> None:
    """The payload is the arrays' raw bytes at the header's offsets; the checksum is sha256."""
    arrays = {"a": np.arange(5, dtype=np.int64), "b": np.ones((3, 3), dtype=np.float32)}
    store.put("cd34", arrays)
    raw = entry_file(store, "cd34").read_bytes()
    assert raw.startswith(MAGIC)
    header = store.meta("cd34")
    start = len(raw) - header["payload_bytes"]
    assert start % 64 == 0
    payload = raw[start:]
    assert hashlib.sha256(payload).hexdigest() == header["checksum"]["hex"]
    for spec in header["arrays"]:
        assert spec["offset"] % 64 == 0
        chunk = payload[spec["offset"] : spec["offset"] + spec["nbytes"]]
        assert chunk == arrays[spec["name"]].tobytes()
    assert b"pickle" not in raw and b"\x80\x04" not in raw[:64]


def test_meta_reads_header_only(store: ArrayStore) -> None:
    arrays = sample_arrays()
    store.put("ef56", arrays, meta={"pooling": "mean", "max_length": 128})
    info = store.meta("ef56")
    assert info["meta"] == {"pooling": "mean", "max_length": 128}
    shapes = {a["name"]: (a["dtype"], tuple(a["shape"])) for a in info["arrays"]}
    assert shapes == {k: (v.dtype.str, v.shape) for k, v in arrays.items()}
    assert store.meta("0000") is None


def test_object_and_structured_arrays_are_refused(store: ArrayStore) -> None:
    with pytest.raises(TypeError, match="obj"):
        store.put("aa00", {"obj": np.array(["x", None], dtype=object)})
    with pytest.raises(TypeError, match="rec"):
        store.put("aa00", {"rec": np.zeros(2, dtype=[("a", "<i4"), ("b", "<f8")])})
    assert "aa00" not in store
    assert list(store.root.rglob("*.tmp")) == []


def test_bad_keys_are_refused(store: ArrayStore) -> None:
    for bad in ["../etc", "", "a/b", ".hidden", "x" * 300]:
        with pytest.raises(ValueError):
            store.put(bad, {"a": np.zeros(1)})
        assert bad not in store


# -- corruption --------------------------------------------------------------------------


def corrupt_and_check(store: ArrayStore, key: str, damage) -> None:
    """Damage the entry, check get -> None + named warning + removal, then recompute."""
    arrays = sample_arrays(1)
    store.put(key, arrays)
    path = entry_file(store, key)
    damage(path)
    with pytest.warns(CacheCorruptionWarning, match=key):
        assert store.get(key) is None
    assert not path.exists()
    assert store.get(key) is None  # a plain miss now, no further warning
    store.put(key, arrays)
    assert_identical(store.get(key), arrays)


def test_flipped_payload_byte_is_detected(store: ArrayStore) -> None:
    def flip(path: Path) -> None:
        raw = bytearray(path.read_bytes())
        raw[-3] ^= 0x01
        path.write_bytes(bytes(raw))

    corrupt_and_check(store, "f1a9", flip)


def test_truncated_file_is_detected(store: ArrayStore) -> None:
    def truncate(path: Path) -> None:
        raw = path.read_bytes()
        path.write_bytes(raw[: len(raw) - 17])

    corrupt_and_check(store, "7aa1", truncate)


def test_truncated_inside_header_is_detected(store: ArrayStore) -> None:
    corrupt_and_check(store, "7ab2", lambda p: p.write_bytes(p.read_bytes()[:20]))


def test_garbage_header_is_detected(store: ArrayStore) -> None:
    def garble(path: Path) -> None:
        raw = bytearray(path.read_bytes())
        raw[:64] = os.urandom(64)
        path.write_bytes(bytes(raw))

    corrupt_and_check(store, "9bad", garble)


def test_header_edit_with_valid_magic_is_detected(store: ArrayStore) -> None:
    """A changed shape inside the JSON (magic intact) fails the header digest."""

    def edit(path: Path) -> None:
        raw = path.read_bytes()
        assert b'"shape":[7,5]' in raw
        path.write_bytes(raw.replace(b'"shape":[7,5]', b'"shape":[5,7]'))

    corrupt_and_check(store, "9bae", edit)


def test_meta_detects_bad_header(store: ArrayStore) -> None:
    store.put("9baf", sample_arrays())
    path = entry_file(store, "9baf")
    path.write_bytes(b"\x00" * 10 + path.read_bytes()[10:])
    with pytest.warns(CacheCorruptionWarning, match="9baf"):
        assert store.meta("9baf") is None
    assert not path.exists()


def test_empty_file_is_detected(store: ArrayStore) -> None:
    corrupt_and_check(store, "0e0e", lambda p: p.write_bytes(b""))


# -- keys --------------------------------------------------------------------------------

KEY_PARTS = {
    "model": "intfloat/multilingual-e5-small@sha256:abc",
    "corpus": "tico19@1f2e",
    "layers": [0, 6, 12],
    "pooling": "mean",
    "prefix": "query: ",
    "max_length": 128,
}


def test_key_is_sha256_of_canonical_json() -> None:
    canonical = json.dumps(
        {"parts": KEY_PARTS, "xrdiag-cache-key": 1},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    want = hashlib.sha256(canonical.encode()).hexdigest()
    assert cache_key(**KEY_PARTS) == want
    assert len(want) == 64


@pytest.mark.parametrize(
    ("part", "other"),
    [
        ("model", "intfloat/multilingual-e5-small@sha256:abd"),
        ("corpus", "tico19@1f2f"),
        ("layers", [0, 6]),
        ("pooling", "cls"),
        ("prefix", "passage: "),
        ("max_length", 256),
        ("max_length", 128.0),
        ("prefix", None),
    ],
)
def test_key_changes_when_any_part_changes(part: str, other: object) -> None:
    assert cache_key(**{**KEY_PARTS, part: other}) != cache_key(**KEY_PARTS)


def test_key_ignores_dict_order_and_tuple_vs_list() -> None:
    reordered = dict(reversed(list(KEY_PARTS.items())))
    assert list(reordered) != list(KEY_PARTS)
    assert cache_key(**reordered) == cache_key(**KEY_PARTS)
    nested_a = {"opts": {"a": 1, "b": [1, 2]}}
    nested_b = {"opts": {"b": (1, 2), "a": 1}}
    assert cache_key(**nested_a) == cache_key(**nested_b)
    assert cache_key(x=[0, 1]) != cache_key(x=[1, 0])
    assert cache_key(x=True) != cache_key(x=1)
    assert cache_key(a=1) != cache_key(b=1)


@pytest.mark.parametrize(
    "bad", [np.int64(3), Path("x"), {1, 2}, b"raw", object(), {"k": {3: "int key"}}]
)
def test_key_refuses_other_types(bad: object) -> None:
    with pytest.raises(TypeError):
        cache_key(model="m", extra=bad)


# -- LRU and bookkeeping -------------------------------------------------------------------


def block(seed: int) -> dict[str, np.ndarray]:
    return {"x": np.full((64, 64), seed, dtype=np.float32)}  # 16 KiB payload


def test_lru_evicts_least_recently_used(tmp_path: Path) -> None:
    probe = ArrayStore(tmp_path / "probe")
    probe.put("pr0b", block(0))
    size = entry_file(probe, "pr0b").stat().st_size
    store = ArrayStore(tmp_path / "lru", max_bytes=3 * size + size // 2)
    for key in ["aaaa", "bbbb", "cccc"]:
        store.put(key, block(0))
    assert store.get("aaaa") is not None  # refresh: bbbb is now least recently used
    store.put("dddd", block(1))
    assert {e.key for e in store.entries()} == {"aaaa", "cccc", "dddd"}
    assert store.info()["total_bytes"] <= store.max_bytes
    store.meta("cccc")  # meta does not count as use
    store.put("eeee", block(2))
    assert {e.key for e in store.entries()} == {"aaaa", "dddd", "eeee"}
    assert store.info()["total_bytes"] == 3 * size


def test_entry_larger_than_limit_is_kept_alone(tmp_path: Path) -> None:
    store = ArrayStore(tmp_path / "small", max_bytes=1000)
    store.put("aaaa", {"x": np.zeros(10, dtype=np.int8)})
    store.put("bbbb", block(3))
    assert [e.key for e in store.entries()] == ["bbbb"]
    assert_identical(store.get("bbbb"), block(3))


def test_info_clear_and_delete(store: ArrayStore) -> None:
    assert store.info()["entries"] == 0 and store.clear() == 0
    assert store.info()["oldest_access"] is None
    keys = [cache_key(i=i) for i in range(5)]
    for i, key in enumerate(keys):
        store.put(key, block(i))
    info = store.info()
    sizes = sum(entry_file(store, k).stat().st_size for k in keys)
    assert info["entries"] == 5 and info["total_bytes"] == sizes
    assert info["root"] == str(store.root) and info["max_bytes"] == 1 << 30
    assert info["oldest_access"] <= info["newest_access"]
    assert store.delete(keys[0]) and not store.delete(keys[0])
    assert store.info()["entries"] == 4
    assert store.clear() == 4
    assert store.info() | {"root": None} == {
        "root": None,
        "entries": 0,
        "total_bytes": 0,
        "max_bytes": 1 << 30,
        "oldest_access": None,
        "newest_access": None,
    }


def test_max_bytes_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XRDIAG_CACHE_MAX_BYTES", "3G")
    assert ArrayStore(tmp_path).max_bytes == 3 * 1024**3
    monkeypatch.setenv("XRDIAG_CACHE_MAX_BYTES", "12345")
    assert ArrayStore(tmp_path).max_bytes == 12345
    monkeypatch.delenv("XRDIAG_CACHE_MAX_BYTES")
    assert ArrayStore(tmp_path).max_bytes == 20 * 1024**3
    monkeypatch.setenv("XRDIAG_CACHE_MAX_BYTES", "lots")
    with pytest.raises(UserError, match="XRDIAG_CACHE_MAX_BYTES"):
        ArrayStore(tmp_path)


def test_default_root_follows_cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XRDIAG_CACHE_DIR", str(tmp_path / "xr"))
    store = ArrayStore(max_bytes=10**6)
    store.put("abcd", block(0))
    assert (tmp_path / "xr" / "embeddings" / "ab" / "abcd.xra").is_file()


# -- concurrency -------------------------------------------------------------------------

# Spawned children cannot import this test module (pytest uses --import-mode=importlib), so
# they run this source through the builtin exec, which pickles by reference.
WORKER = """
import json, time, warnings
import numpy as np
from xrdiag.cache.store import ArrayStore

store = ArrayStore(root, max_bytes=1 << 30)
if role == "writer":
    while not ready_file.exists():  # start writing only once the reader is reading
        time.sleep(0.001)
    for i in range(rounds):
        v = wid * 1000 + i
        store.put(key, {"x": np.full((256, 64), v, np.float32), "v": np.array([v, -v])},
                  meta={"v": v})
else:
    stats = {"hits": 0, "misses": 0, "errors": [], "bad": 0, "seen": []}
    ready_file.touch()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        while not stop_file.exists() or stats["hits"] == 0:
            try:
                got = store.get(key)
            except Exception as exc:
                stats["errors"].append(repr(exc))
                continue
            if got is None:
                stats["misses"] += 1
                continue
            stats["hits"] += 1
            v = int(got["v"][0])
            ok = got["x"].shape == (256, 64) and bool((got["x"] == v).all())
            stats["bad"] += not (ok and int(got["v"][1]) == -v)
            stats["seen"].append(v)
    stats["warnings"] = [str(w.message) for w in caught]
    out_file.write_text(json.dumps(stats))
"""


def test_concurrent_writers_and_reader(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    root, key = tmp_path / "race", cache_key(model="m", race=True)
    stop_file, out_file = tmp_path / "stop", tmp_path / "reader.json"
    common = {"root": root, "key": key, "stop_file": stop_file, "out_file": out_file}
    common["ready_file"] = tmp_path / "ready"
    reader = ctx.Process(target=exec, args=(WORKER, {**common, "role": "reader"}))
    jobs = [{**common, "role": "writer", "wid": w, "rounds": 40} for w in (1, 2)]
    writers = [ctx.Process(target=exec, args=(WORKER, job)) for job in jobs]
    reader.start()
    for p in writers:
        p.start()
    for p in writers:
        p.join(timeout=120)
    stop_file.touch()
    reader.join(timeout=120)
    assert [p.exitcode for p in writers] == [0, 0]
    assert reader.exitcode == 0
    stats = json.loads(out_file.read_text())
    assert stats["errors"] == [] and stats["warnings"] == [] and stats["bad"] == 0
    assert stats["hits"] > 0 and len(set(stats["seen"])) > 1
    final = ArrayStore(root).get(key)
    assert int(final["v"][0]) in {1039, 2039}
    assert list(root.rglob("*.tmp")) == []
    assert ArrayStore(root).info()["entries"] == 1
