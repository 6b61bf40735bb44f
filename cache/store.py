"""A content-addressed store of named numpy arrays: one verified file per key, LRU-bounded.

Entries are written to a temporary file, fsync'd and renamed into place, so concurrent writers
of one key both complete (the last rename wins) and readers never see a partial file. Every
read verifies a header digest and a payload checksum; a bad entry is reported, deleted and
treated as a miss, so the caller recomputes instead of trusting it.

File layout (``<root>/<key[:2]>/<key>.xra``)::

    magic (8) | version u32 | header length u32 | blake2b-16 of header (16) | header JSON
    | zero padding to 64 bytes | payload: each array's raw C-order bytes, 64-byte aligned
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import struct
import time
import uuid
import warnings
from collections.abc import Iterator, Mapping
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from xrdiag.cache.paths import embeddings_dir
from xrdiag.errors import UserError

MAGIC = b"XRDIAGA\x00"
FORMAT_VERSION = 1
SUFFIX = ".xra"
MAX_BYTES_ENV = "XRDIAG_CACHE_MAX_BYTES"
DEFAULT_MAX_BYTES = 20 * 1024**3
CHECKSUM = "sha256"  # hardware-accelerated on current x86 and ARM; blake2b is also accepted
_CHECKSUMS = frozenset({"sha256", "blake2b"})
_PREFIX = struct.Struct("<8sII16s")
_ALIGN = 64
_MAX_HEADER = 16 * 1024**2
_STALE_TMP_S = 3600.0
_KEY_RE = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{1,199}")
_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
_last_stamp_ns = 0


class CacheCorruptionWarning(UserWarning):
    """A cache entry failed verification and was deleted; the caller recomputes it."""


class _Corrupt(Exception):
    """Internal: an entry failed verification (the message says why)."""


@dataclass(frozen=True)
class Entry:
    """One stored entry: its key, its size on disk and its last access (epoch seconds)."""

    key: str
    size: int
    last_access: float


def cache_key(**parts: object) -> str:
    """SHA-256 hex of a canonical JSON of `parts` (sorted keys, no whitespace).

    Allowed values: None, bool, int, float, str, lists/tuples (hashed alike) and dicts with
    str keys, nested freely; anything else raises TypeError so that no part is hashed by an
    unstable repr.
    """
    canonical = json.dumps(
        {"xrdiag-cache-key": 1, "parts": _canonical(parts, "parts")},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=True,
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _canonical(value: object, path: str) -> object:
    """Validate `value` for `cache_key`, turning tuples into lists."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [_canonical(v, f"{path}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"cache_key: {path} has a non-str key {k!r}")
            out[k] = _canonical(v, f"{path}.{k}")
        return out
    raise TypeError(
        f"cache_key: {path} is a {type(value).__name__}; "
        "expected None, bool, int, float, str, list, tuple or dict (convert it first)"
    )


def _now_ns() -> int:
    """A strictly increasing wall-clock stamp, so LRU order survives coarse fs timestamps."""
    global _last_stamp_ns
    _last_stamp_ns = max(time.time_ns(), _last_stamp_ns + 1)
    return _last_stamp_ns


def _aligned(n: int) -> int:
    """`n` rounded up to the payload alignment."""
    return -(-n // _ALIGN) * _ALIGN


def _max_bytes_from_env() -> int:
    """`XRDIAG_CACHE_MAX_BYTES` (bytes, optional K/M/G/T binary suffix) or 20 GiB."""
    raw = os.environ.get(MAX_BYTES_ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_BYTES
    m = re.fullmatch(r"(\d+)\s*([KMGT]?)(?:i?B)?", raw, flags=re.IGNORECASE)
    if not m or int(m.group(1)) <= 0:
        raise UserError(f"{MAX_BYTES_ENV}={raw!r}: expected a positive size such as 5000000 or 20G")
    return int(m.group(1)) * _UNITS[m.group(2).upper()]


class ArrayStore:
    """Named numpy arrays under content-addressed keys, verified on read, bounded by LRU."""

    def __init__(self, root: Path | None = None, max_bytes: int | None = None) -> None:
        self.root = Path(root) if root is not None else embeddings_dir()
        self.max_bytes = _max_bytes_from_env() if max_bytes is None else int(max_bytes)
        if self.max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive, got {max_bytes}")

    def path(self, key: str) -> Path:
        """The file that holds `key` (whether or not it exists)."""
        if not isinstance(key, str) or not _KEY_RE.fullmatch(key):
            raise ValueError(f"bad cache key {key!r}: expected 2-200 of [A-Za-z0-9_.-]")
        return self.root / key[:2] / f"{key}{SUFFIX}"

    def get(self, key: str) -> dict[str, np.ndarray] | None:
        """The arrays stored under `key` (writeable, C-contiguous), or None on a miss.

        One read of the whole file into one buffer, then a checksum; the arrays are views of
        that buffer, so holding any of them keeps the entry's buffer alive.
        """
        path = self.path(key)
        loaded = self._load(path, payload=True)
        if loaded is None:
            return None
        header, buf, start = loaded
        arrays = {}
        for spec in header["arrays"]:
            lo = start + spec["offset"]
            raw = buf[lo : lo + spec["nbytes"]]
            arrays[spec["name"]] = raw.view(spec.pop("_dtype")).reshape(spec["shape"])
        self._touch(path)
        return arrays

    def meta(self, key: str) -> dict[str, Any] | None:
        """The entry's header without reading the payload, or None on a miss.

        Keys: `version`, `arrays` (list of name/dtype/shape/offset/nbytes), `payload_bytes`,
        `checksum`, `created` (epoch seconds) and `meta` (the dict given to `put`). The header
        digest and the file size are verified; the payload checksum is left to `get`.
        """
        loaded = self._load(self.path(key), payload=False)
        if loaded is None:
            return None
        for spec in loaded[0]["arrays"]:
            del spec["_dtype"]
        return loaded[0]

    def __contains__(self, key: object) -> bool:
        """Whether a file exists for `key` (not verified; `get` verifies)."""
        with suppress(ValueError):
            return self.path(key).is_file()  # type: ignore[arg-type]
        return False

    def put(
        self, key: str, arrays: Mapping[str, np.ndarray], meta: dict[str, Any] | None = None
    ) -> None:
        """Store `arrays` under `key` atomically, then evict LRU entries down to `max_bytes`."""
        path = self.path(key)
        specs: list[dict[str, Any]] = []
        chunks: list[bytes | memoryview] = []
        end = 0
        for name, value in arrays.items():
            arr = _storable(name, value)
            offset = _aligned(end)
            specs.append(
                {"name": name, "dtype": arr.dtype.str, "shape": list(arr.shape)}
                | {"offset": offset, "nbytes": arr.nbytes}
            )
            chunks += [bytes(offset - end), arr.reshape(-1).view(np.uint8).data]
            end = offset + arr.nbytes
        hasher = hashlib.new(CHECKSUM)
        for chunk in chunks:
            hasher.update(chunk)
        header = {
            "version": FORMAT_VERSION,
            "arrays": specs,
            "payload_bytes": end,
            "checksum": {"algorithm": CHECKSUM, "hex": hasher.hexdigest()},
            "created": time.time(),
            "meta": meta or {},
        }
        hjson = json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")
        hdigest = hashlib.blake2b(hjson, digest_size=16).digest()
        head = _PREFIX.pack(MAGIC, FORMAT_VERSION, len(hjson), hdigest) + hjson
        chunks.insert(0, head + bytes(_aligned(len(head)) - len(head)))

        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.{uuid.uuid4().hex[:12]}.tmp")
        try:
            with open(tmp, "wb") as f:
                for chunk in chunks:
                    f.write(chunk)
                f.flush()
                os.fsync(f.fileno())
            stamp = _now_ns()
            os.utime(tmp, ns=(stamp, stamp))
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_dir(path.parent)
        self._evict(keep=path)

    def delete(self, key: str) -> bool:
        """Remove `key`; True if it was there."""
        with suppress(FileNotFoundError):
            self.path(key).unlink()
            return True
        return False

    def clear(self) -> int:
        """Remove every entry (and stale temporary files); return how many entries went."""
        return sum(self.delete(entry_path.name[: -len(SUFFIX)]) for entry_path, _ in self._scan())

    def entries(self) -> Iterator[Entry]:
        """Every entry as (key, size in bytes, last access in epoch seconds), unordered."""
        for entry_path, st in self._scan():
            yield Entry(entry_path.name[: -len(SUFFIX)], st.st_size, st.st_mtime_ns / 1e9)

    def info(self) -> dict[str, Any]:
        """Root, entry count, total bytes, the limit and the oldest/newest access (epoch s)."""
        found = list(self.entries())
        access = [e.last_access for e in found]
        return {
            "root": str(self.root),
            "entries": len(found),
            "total_bytes": sum(e.size for e in found),
            "max_bytes": self.max_bytes,
            "oldest_access": min(access) if access else None,
            "newest_access": max(access) if access else None,
        }

    def _scan(self) -> Iterator[tuple[Path, os.stat_result]]:
        """Entry files with their stat; removes temporary files left by crashed writers."""
        if not self.root.is_dir():
            return
        now = time.time()
        for sub in os.scandir(self.root):
            if not sub.is_dir(follow_symlinks=False):
                continue
            for item in os.scandir(sub.path):
                try:
                    st = item.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                if item.name.endswith(SUFFIX) and item.is_file(follow_symlinks=False):
                    yield Path(item.path), st
                elif item.name.endswith(".tmp") and now - st.st_mtime > _STALE_TMP_S:
                    Path(item.path).unlink(missing_ok=True)

    def _evict(self, keep: Path) -> None:
        """Delete least-recently-used entries (by mtime) until the total fits `max_bytes`."""
        found = list(self._scan())
        total = sum(st.st_size for _, st in found)
        for entry_path, st in sorted(found, key=lambda item: item[1].st_mtime_ns):
            if total <= self.max_bytes:
                break
            if entry_path == keep:
                continue
            entry_path.unlink(missing_ok=True)
            total -= st.st_size

    def _load(self, path: Path, payload: bool) -> tuple[dict[str, Any], np.ndarray, int] | None:
        """Read and verify an entry (header only unless `payload`); None on a miss or corruption."""
        try:
            with open(path, "rb", buffering=0) as f:
                st = os.fstat(f.fileno())
                try:
                    if payload:
                        buf = np.empty(st.st_size, dtype=np.uint8)
                        if (got := _read_exact(f, buf)) != st.st_size:
                            raise _Corrupt(f"read {got} of {st.st_size} bytes")
                    else:
                        head = f.read(_PREFIX.size)
                        hlen = _PREFIX.unpack(head)[2] if len(head) == _PREFIX.size else 0
                        head += f.read(min(hlen, _MAX_HEADER))
                        buf = np.frombuffer(head, dtype=np.uint8)
                    header, start = _parse_header(buf, st.st_size)
                    if payload:
                        _verify_payload(header, buf[start:])
                except _Corrupt as exc:
                    self._discard(path, st, str(exc))
                    return None
        except FileNotFoundError:
            return None
        return header, buf, start

    @staticmethod
    def _touch(path: Path) -> None:
        """Mark a hit: mtime is the LRU clock (atime is unreliable on noatime mounts)."""
        stamp = _now_ns()
        with suppress(FileNotFoundError):
            os.utime(path, ns=(stamp, stamp))

    @staticmethod
    def _discard(path: Path, st: os.stat_result, reason: str) -> None:
        """Warn about a bad entry and delete it, unless a writer has already replaced it."""
        warnings.warn(
            f"xrdiag cache: corrupt entry {path} ({reason}); deleted, it will be recomputed",
            CacheCorruptionWarning,
            stacklevel=3,
        )
        with suppress(FileNotFoundError):
            now = os.stat(path)
            if (now.st_ino, now.st_dev) == (st.st_ino, st.st_dev):
                path.unlink()


def _verify_payload(header: dict[str, Any], payload: np.ndarray) -> None:
    digest = hashlib.new(header["checksum"]["algorithm"], payload.data).hexdigest()
    if digest != header["checksum"]["hex"]:
        raise _Corrupt("payload checksum mismatch")


def _storable(name: object, value: object) -> np.ndarray:
    """`value` as a C-contiguous array of a plain dtype (no objects, no structured records)."""
    if not isinstance(name, str) or not name:
        raise TypeError(f"array names must be non-empty str, got {name!r}")
    arr = np.asarray(value)
    if not arr.flags.c_contiguous:
        arr = arr.copy(order="C")  # (ascontiguousarray would turn a 0-d array into 1-d)
    if arr.dtype.hasobject or arr.dtype.fields is not None or arr.dtype.subdtype is not None:
        raise TypeError(f"array {name!r} has dtype {arr.dtype}; only plain dtypes are stored")
    return arr


def _read_exact(f: Any, buf: np.ndarray) -> int:
    """Fill `buf` from `f`, looping because one read() returns at most ~2 GiB on Linux."""
    view, got = buf.data, 0
    while got < buf.size and (n := f.readinto(view[got:])):
        got += n
    return got


def _fsync_dir(directory: Path) -> None:
    """Persist the rename itself (POSIX); a no-op where directories cannot be opened."""
    with suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _parse_header(buf: np.ndarray, file_size: int) -> tuple[dict[str, Any], int]:
    """Verify the prefix and header at the start of `buf`; return (header, payload start)."""
    if buf.size < _PREFIX.size:
        raise _Corrupt(f"file of {file_size} bytes is shorter than its prefix")
    magic, version, hlen, hdigest = _PREFIX.unpack(buf[: _PREFIX.size].tobytes())
    if magic != MAGIC:
        raise _Corrupt("bad magic")
    if version != FORMAT_VERSION:
        raise _Corrupt(f"format version {version}, expected {FORMAT_VERSION}")
    if hlen > _MAX_HEADER or _PREFIX.size + hlen > buf.size:
        raise _Corrupt(f"header of {hlen} bytes does not fit a {file_size}-byte file")
    hjson = buf[_PREFIX.size : _PREFIX.size + hlen].tobytes()
    if hashlib.blake2b(hjson, digest_size=16).digest() != hdigest:
        raise _Corrupt("header digest mismatch")
    try:
        header = json.loads(hjson)
        start = _aligned(_PREFIX.size + hlen)
        payload_bytes = header["payload_bytes"]
        checksum = header["checksum"]
        if checksum["algorithm"] not in _CHECKSUMS or not isinstance(checksum["hex"], str):
            raise _Corrupt(f"bad checksum field {checksum!r}")
        for spec in header["arrays"]:
            dtype = np.dtype(spec["dtype"])
            shape = spec["shape"]
            if not isinstance(spec["name"], str) or dtype.hasobject or dtype.fields is not None:
                raise _Corrupt(f"array entry {spec!r} is not a plain named array")
            if not all(isinstance(d, int) and d >= 0 for d in shape):
                raise _Corrupt(f"array {spec['name']!r} has a bad shape {shape!r}")
            if math.prod(shape) * dtype.itemsize != spec["nbytes"]:
                raise _Corrupt(f"array {spec['name']!r} has an inconsistent size")
            if spec["offset"] < 0 or spec["offset"] + spec["nbytes"] > payload_bytes:
                raise _Corrupt(f"array {spec['name']!r} lies outside the payload")
            spec["_dtype"] = dtype
    except (ValueError, TypeError, KeyError) as exc:
        raise _Corrupt(f"malformed header ({exc})") from None
    if start + payload_bytes != file_size:
        raise _Corrupt(f"file is {file_size} bytes, header says {start + payload_bytes}")
    return header, start
