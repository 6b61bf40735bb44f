"""Centred kernel alignment (CKA) between representations of the same inputs.

Linear and RBF CKA (Kornblith et al. 2019), debiased CKA from the unbiased HSIC of Song et al.
2012, minibatch CKA (Nguyen et al. 2021). CKA compares representations up to rotation and
isotropic scaling: do two languages (layers, checkpoints) arrange the same sentences alike?

Result frames (analysis "cka"); pairs with too few rows (< 2, or < 4 for debiased) are left out:
- `cross_language_cka`: metric `linear_cka` / `rbf_cka` / `debiased_cka`, one row per unordered
  language pair (`src_lang` < `tgt_lang`) on the ids both languages have; `n` = shared ids.
- `layer_cka`: metric `linear_cka_layer@<j>` with `layer` = i, for every ordered pair (i, j),
  diagonal included, so a view pivots `layer` x metric suffix into the full heatmap: the schema
  has one layer column, so the second layer rides in the metric name as `recall@k` carries k.
  Pooled languages: `src_lang`/`tgt_lang` null; per language: both set to it.
- `checkpoint_cka`: metric `linear_cka_checkpoint` per layer, pooled (languages null) and per
  language (`src_lang` = `tgt_lang` = the language).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from itertools import combinations, product

import numpy as np
import polars as pl

from xrdiag.analyses.inputs import AnalysisInputs
from xrdiag.analyses.schema import ALL_DOMAINS, results_frame
from xrdiag.errors import UserError

KIND_METRICS = {"linear": "linear_cka", "rbf": "rbf_cka", "debiased": "debiased_cka"}
_MIN_ROWS = {"linear": 2, "rbf": 2, "debiased": 4}


def _centred(x: np.ndarray) -> np.ndarray:
    """Column-centred float64 copy (HX with H = I - 11^T/n)."""
    x = np.asarray(x, dtype=np.float64)
    return x - x.mean(axis=0)


def _ratio(num: float, den_sq: float) -> float:
    """num / sqrt(den_sq), NaN where a side has no variance (CKA undefined)."""
    return float(num / np.sqrt(den_sq)) if den_sq > 0 else float("nan")


def _check_pair(x: np.ndarray, y: np.ndarray, min_rows: int) -> None:
    if np.ndim(x) != 2 or np.ndim(y) != 2 or len(x) != len(y) or len(x) < min_rows:
        raise ValueError(f"CKA needs two 2-D arrays of the same >= {min_rows} rows")


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F), centred, float64 (Kornblith eq. 5).

    One stacked product [X Y]^T [X Y] (BLAS syrk, O(n d^2)); n x n Grams only where n < d.
    """
    _check_pair(x, y, 2)
    cross = _cross_norms([x, y], np.float64, 8192, 4096)
    return _ratio(cross[0, 1], cross[0, 0] * cross[1, 1])


def _rbf_gram(x: np.ndarray, sigma_factor: float) -> np.ndarray:
    """Centred RBF Gram exp(-|xi - xj|^2 / (2 sigma^2)), sigma = factor * median distance.

    The median runs over the n(n-1)/2 off-diagonal pairs i < j (the zero self-distances are
    left out, unlike Kornblith's reference code), computed per matrix.
    """
    xc = _centred(x)
    sq = np.sum(xc * xc, axis=1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * (xc @ xc.T), 0.0)
    np.fill_diagonal(d2, 0.0)
    sigma = sigma_factor * float(np.median(np.sqrt(d2[np.triu_indices(len(xc), k=1)])))
    if not sigma > 0:
        raise ValueError("RBF CKA: median pairwise distance is 0 (all rows identical)")
    k = np.exp(-d2 / (2.0 * sigma * sigma))
    return k - k.mean(axis=0) - k.mean(axis=1)[:, None] + k.mean()


def rbf_cka(x: np.ndarray, y: np.ndarray, sigma_factor: float = 1.0) -> float:
    """RBF-kernel CKA: HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)) on centred Grams (Kornblith)."""
    _check_pair(x, y, 2)
    kx, ky = _rbf_gram(x, sigma_factor), _rbf_gram(y, sigma_factor)
    return _ratio(np.vdot(kx, ky), np.vdot(kx, kx) * np.vdot(ky, ky))


def debiased_linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA from the unbiased HSIC of Song et al. 2012 (n >= 4).

    Plain CKA of unrelated data is far from 0 unless d << n; this is near 0 (Nguyen et al. 2021).
    """
    _check_pair(x, y, 4)
    h = _unbiased_hsic_matrix([x, y])
    return _ratio(h[0, 1], h[0, 0] * h[1, 1])


def minibatch_cka(x: np.ndarray, y: np.ndarray, batch_size: int = 256, seed: int = 0) -> float:
    """Minibatch CKA (Nguyen et al. 2021): average unbiased HSICs over batches, then the ratio.

    Rows are shuffled with `seed` and split into max(1, n // batch_size) near-equal batches, so
    every row counts once; batch_size >= n gives one batch, i.e. `debiased_linear_cka`.
    """
    _check_pair(x, y, 4)
    if batch_size < 4:
        raise ValueError(f"batch_size must be >= 4, got {batch_size}")
    order = np.random.default_rng(seed).permutation(len(x))
    batches = np.array_split(order, max(1, len(x) // batch_size))
    h = np.mean([_unbiased_hsic_matrix([x[b], y[b]]) for b in batches], axis=0)
    return _ratio(h[0, 1], h[0, 0] * h[1, 1])


def _cross_norms(
    features: Sequence[np.ndarray], dtype: type, block_rows: int, max_cols: int
) -> np.ndarray:
    """All-pairs ||X_j^T X_i||_F^2 of the centred matrices, in float64.

    Each centred matrix is scaled to unit Frobenius norm before the cast to `dtype`, so float32
    neither overflows nor loses the small ones; the scale is undone in float64 afterwards.
    """
    mats = [np.asarray(f) for f in features]
    if not mats or any(m.ndim != 2 for m in mats) or len({len(m) for m in mats}) != 1:
        raise ValueError("cka_matrix needs one or more 2-D arrays with the same number of rows")
    n, widths = len(mats[0]), [m.shape[1] for m in mats]
    offs = np.cumsum([0] + widths)
    means = [m.mean(axis=0, dtype=np.float64) for m in mats]
    sq = [
        sum(_sq(m[r : r + block_rows] - mu) for r in range(0, n, block_rows))
        for m, mu in zip(mats, means, strict=True)
    ]
    unscale = np.outer(sq, sq)  # (||X_i||_F ||X_j||_F)^2
    scales = [1.0 / np.sqrt(s) if s > 0 else 0.0 for s in sq]

    def slab(idx: Sequence[int], r0: int, r1: int, kind: type = dtype) -> np.ndarray:
        out = np.empty((r1 - r0, offs[idx[-1] + 1] - offs[idx[0]]), kind)
        for i in idx:
            part = np.subtract(mats[i][r0:r1], means[i], dtype=np.float64)
            cols = slice(offs[i] - offs[idx[0]], offs[i + 1] - offs[idx[0]])
            np.multiply(part, scales[i], out=out[:, cols], casting="unsafe")
        return out

    cross = np.zeros((len(mats), len(mats)))
    if n < np.mean(widths):  # n x n Grams are cheaper than d x d products
        flat = np.stack(
            [(g @ g.T).ravel() for g in (slab([i], 0, n, np.float64) for i in range(len(mats)))]
        )
        return (flat @ flat.T) * unscale
    groups = _column_groups(widths, max_cols)
    for gp, gq in ((p, q) for a, p in enumerate(groups) for q in groups[a:]):
        gram = None
        for r0 in range(0, n, block_rows):
            left = slab(gp, r0, min(n, r0 + block_rows))
            part = left.T @ (left if gp is gq else slab(gq, r0, min(n, r0 + block_rows)))
            gram = part.astype(np.float64) if gram is None else gram + part
        for i, j in ((i, j) for i in gp for j in gq if gp is not gq or j >= i):
            rows = slice(offs[i] - offs[gp[0]], offs[i + 1] - offs[gp[0]])
            cols = slice(offs[j] - offs[gq[0]], offs[j + 1] - offs[gq[0]])
            cross[i, j] = cross[j, i] = _sq(gram[rows, cols])
    return cross * unscale


def _sq(a: np.ndarray) -> float:
    """Sum of squares in float64 without a squared temporary."""
    return float(np.einsum("ij,ij->", a, a, dtype=np.float64))


def _column_groups(widths: Sequence[int], max_cols: int) -> list[list[int]]:
    """Contiguous runs of matrices whose stacked width stays <= max_cols (at least one each)."""
    groups: list[list[int]] = [[]]
    for i, w in enumerate(widths):
        if groups[-1] and sum(widths[j] for j in groups[-1]) + w > max_cols:
            groups.append([])
        groups[-1].append(i)
    return groups


def cka_matrix(
    features: Sequence[np.ndarray],
    *,
    dtype: type = np.float32,
    block_rows: int = 8192,
    max_cols: int = 4096,
) -> np.ndarray:
    """All-pairs linear CKA [m, m] among feature matrices on the same n rows.

    Centres each matrix once and stacks them into Z [n, sum d]: one symmetric product Z^T Z
    (BLAS syrk) gives every ||X_j^T X_i||_F^2 as the squared norm of a d x d block, self-norms
    included. Rows go in blocks of `block_rows`, columns in groups of <= `max_cols`, to bound
    memory. float32 products agree with float64 to ~1e-8 on unit-scaled data (bench/cka.py).
    """
    cross = _cross_norms(features, dtype, block_rows, max_cols)
    self_norm = np.sqrt(np.diag(cross))
    with np.errstate(divide="ignore", invalid="ignore"):
        return cross / np.outer(self_norm, self_norm)


def _unbiased_hsic_matrix(features: Sequence[np.ndarray]) -> np.ndarray:
    """All-pairs unbiased HSIC of linear kernels (Song et al. 2012, eq. 5), float64, O(n d^2).

    With K~ = XX^T less its diagonal kd: [tr(K~L~) + 1'K~1 1'L~1 / ((n-1)(n-2)) - 2/(n-2)
    1'K~L~1] / (n(n-3)). The estimator ignores shifts, so X is centred (X^T 1 = 0): then
    tr(K~L~) = ||Y^T X||_F^2 - kd.ld, 1'K~1 = -sum(kd) and K~1 = -kd.
    """
    cross = _cross_norms(features, np.float64, 8192, 4096)
    n = len(features[0])
    diags = np.stack([np.sum(np.square(_centred(f)), axis=1) for f in features])
    dot, sums = diags @ diags.T, diags.sum(axis=1)
    hsic = cross - dot + np.outer(sums, sums) / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * dot
    return hsic / (n * (n - 3))


def _debiased_matrix(features: Sequence[np.ndarray]) -> np.ndarray:
    """All-pairs debiased linear CKA."""
    hsic = _unbiased_hsic_matrix(features)
    self_h = np.diag(hsic).copy()
    with np.errstate(divide="ignore", invalid="ignore"):
        return hsic / np.sqrt(np.outer(self_h, self_h))


def _rbf_matrix(features: Sequence[np.ndarray], sigma_factor: float) -> np.ndarray:
    """All-pairs RBF CKA: each centred Gram once (m n x n float64 arrays in memory)."""
    grams = [_rbf_gram(f, sigma_factor) for f in features]
    cross = np.array([[np.vdot(a, b) for b in grams] for a in grams])
    self_n = np.sqrt(np.diag(cross))
    return cross / np.outer(self_n, self_n)


def _pair_matrix(kind: str, mats: Sequence[np.ndarray], sigma_factor: float) -> np.ndarray:
    if kind == "rbf":
        return _rbf_matrix(mats, sigma_factor)
    return cka_matrix(mats) if kind == "linear" else _debiased_matrix(mats)


# ---- frame builders ------------------------------------------------------------------------


def _scopes(
    meta: pl.DataFrame, langs: Iterable[str] | None, domain: str | None, per_domain: bool
) -> tuple[list[str], list[tuple[str, pl.DataFrame]]]:
    """Validate meta/langs/domain; return the languages and (domain label, rows) to compute on."""
    need = ["id", "lang"] + (["domain"] if domain is not None or per_domain else [])
    missing = [c for c in need if c not in meta.columns]
    if missing:
        raise UserError(f"metadata: missing column {missing[0]!r}; expected columns {need}")
    meta = meta.with_row_index("_row")
    have = sorted(meta["lang"].unique().to_list())
    chosen = have if langs is None else sorted(set(langs))
    for lang in chosen:
        if lang not in have:
            raise UserError(f"langs: unknown language {lang!r}; the corpus has {', '.join(have)}")
    meta = meta.filter(pl.col("lang").is_in(chosen))
    dup = meta.filter(pl.struct("id", "lang").is_duplicated())
    if dup.height:
        row = dup.row(0, named=True)
        raise UserError(
            f"metadata: id {row['id']!r} appears twice for language {row['lang']!r}; "
            "expected one row per (id, lang)"
        )
    domains = sorted(meta["domain"].unique().to_list()) if "domain" in meta.columns else []
    if domain is not None and domain not in domains:
        raise UserError(f"domain: unknown domain {domain!r}; the corpus has {domains}")
    names = [domain] if domain is not None else domains if per_domain else []
    scopes = [] if domain is not None else [(ALL_DOMAINS, meta)]
    return chosen, scopes + [(d, meta.filter(pl.col("domain") == d)) for d in names]


def _check_embeddings(embeddings: Mapping[int, np.ndarray], meta: pl.DataFrame) -> None:
    bad = [k for k, e in embeddings.items() if e.ndim != 2 or len(e) != meta.height]
    if not embeddings or bad:
        raise ValueError(f"embeddings need [n, d] arrays with n = {meta.height} meta rows: {bad}")


def _id_groups(rows: Mapping[str, pl.DataFrame]) -> list[list[str]]:
    """Languages grouped by identical id sets: each group is one aligned `cka_matrix` call."""
    groups: dict[tuple[object, ...], list[str]] = {}
    for lang, r in rows.items():
        groups.setdefault(tuple(r["id"].to_list()), []).append(lang)
    return list(groups.values())


def _language_pairs(
    kind: str, emb: np.ndarray, rows: Mapping[str, pl.DataFrame], sigma_factor: float
) -> dict[tuple[str, str], tuple[float, int]]:
    """(src, tgt) -> (CKA, shared ids) for src < tgt, pairs too small for `kind` left out."""
    values: dict[tuple[str, str], tuple[float, int]] = {}
    groups = _id_groups(rows)
    for g in groups:
        n = rows[g[0]].height
        if len(g) > 1 and n >= _MIN_ROWS[kind]:
            m = _pair_matrix(kind, [emb[rows[lang]["_row"].to_numpy()] for lang in g], sigma_factor)
            values.update(
                {(g[i], g[j]): (float(m[i, j]), n) for i, j in combinations(range(len(g)), 2)}
            )
    for a, b in combinations(sorted(rows), 2):
        if any(a in g and b in g for g in groups):
            continue
        both = rows[a].join(rows[b], on="id", suffix="_b")
        if both.height >= _MIN_ROWS[kind]:
            x, y = emb[both["_row"].to_numpy()], emb[both["_row_b"].to_numpy()]
            values[(a, b)] = (float(_pair_matrix(kind, [x, y], sigma_factor)[0, 1]), both.height)
    return values


def cross_language_cka(
    embeddings: Mapping[int, np.ndarray],
    meta: pl.DataFrame,
    *,
    langs: Iterable[str] | None = None,
    domain: str | None = None,
    kinds: Sequence[str] = ("linear",),
    per_domain: bool = False,
    sigma_factor: float = 1.0,
    checkpoint: str = "",
) -> pl.DataFrame:
    """CKA between every pair of languages per layer, rows matched by `id` (module docstring)."""
    for kind in kinds:
        if kind not in KIND_METRICS:
            raise UserError(f"kinds: unknown CKA kind {kind!r}; expected {list(KIND_METRICS)}")
    _check_embeddings(embeddings, meta)
    chosen, scopes = _scopes(meta, langs, domain, per_domain)
    out = []
    for label, scope in scopes:
        parts = scope.sort("id").partition_by("lang", as_dict=True)
        rows = {str(k[0]): p.select("id", "_row") for k, p in sorted(parts.items())}
        for layer in sorted(embeddings):
            for kind in kinds:
                pairs = _language_pairs(kind, embeddings[layer], rows, sigma_factor)
                for (a, b), (value, n) in sorted(pairs.items()):
                    out.append(_row(KIND_METRICS[kind], layer, a, b, label, value, n))
    return results_frame(out, checkpoint=checkpoint)


def _row(*values: object) -> dict[str, object]:
    """A result row from (metric, layer, src_lang, tgt_lang, domain, value, n)."""
    keys = ("metric", "layer", "src_lang", "tgt_lang", "domain", "value", "n")
    return {"analysis": "cka", **dict(zip(keys, values, strict=True))}


def _row_sets(scope: pl.DataFrame, per_lang: bool) -> list[tuple[str | None, np.ndarray]]:
    """(language or None for pooled, embedding row indices) for the pooled set and per language."""
    parts = sorted(scope.partition_by("lang", as_dict=True).items()) if per_lang else []
    return [(None, scope["_row"].to_numpy())] + [(k[0], p["_row"].to_numpy()) for k, p in parts]


def layer_cka(
    embeddings: Mapping[int, np.ndarray],
    meta: pl.DataFrame,
    *,
    langs: Iterable[str] | None = None,
    domain: str | None = None,
    per_lang: bool = False,
    checkpoint: str = "",
) -> pl.DataFrame:
    """Linear CKA between every two layers on the same rows (`linear_cka_layer@<j>`, see top)."""
    _check_embeddings(embeddings, meta)
    _, scopes = _scopes(meta, langs, domain, per_domain=False)
    label, scope = scopes[0]
    layers = sorted(embeddings)
    out = []
    for lang, idx in _row_sets(scope, per_lang):
        if len(idx) < 2:
            continue
        m = cka_matrix([embeddings[layer][idx] for layer in layers])
        for (i, li), (j, lj) in product(enumerate(layers), repeat=2):
            out.append(_row(f"linear_cka_layer@{lj}", li, lang, lang, label, m[i, j], len(idx)))
    return results_frame(out, checkpoint=checkpoint)


def checkpoint_cka(
    emb_a: Mapping[int, np.ndarray],
    emb_b: Mapping[int, np.ndarray],
    meta: pl.DataFrame,
    *,
    langs: Iterable[str] | None = None,
    domain: str | None = None,
    checkpoint: str = "",
) -> pl.DataFrame:
    """Linear CKA between two checkpoints' embeddings of the same inputs, per shared layer."""
    _check_embeddings(emb_a, meta)
    _check_embeddings(emb_b, meta)
    layers = sorted(set(emb_a) & set(emb_b))
    if not layers:
        msg = (
            f"checkpoints share no layer: {sorted(emb_a)} vs {sorted(emb_b)}; expected equal depth"
        )
        raise UserError(msg)
    _, scopes = _scopes(meta, langs, domain, per_domain=False)
    label, scope = scopes[0]
    out = []
    for layer in layers:
        for lang, idx in _row_sets(scope, per_lang=True):
            if len(idx) >= 2:
                value = float(cka_matrix([emb_a[layer][idx], emb_b[layer][idx]])[0, 1])
                out.append(_row("linear_cka_checkpoint", layer, lang, lang, label, value, len(idx)))
    return results_frame(out, checkpoint=checkpoint)


def analyse(inputs: AnalysisInputs) -> pl.DataFrame:
    """The registered `cka` analysis: every language pair per layer and domain (plain and
    debiased linear CKA), and layer x layer."""
    kinds = ("linear", "debiased")
    frames = [cross_language_cka(inputs.layers, inputs.meta, kinds=kinds, per_domain=True)]
    if len(inputs.layers) > 1:
        frames.append(layer_cka(inputs.layers, inputs.meta))
    return pl.concat(frames)
