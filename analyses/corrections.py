"""Corrections of the embedding space before retrieval: language centring and LIR.

Each is applied to the raw embeddings, then rows are L2-normalised; statistics are computed over
all rows of the languages in use (every domain), so per-domain and "all" figures share a space.

- `center`: subtract each language's mean vector (Libovický et al., 2020, "On the
  language neutrality of pre-trained multilingual representations").
- `lir`: Language Information Removal as published (Yang et al., 2021, "A simple and effective
  method to eliminate the self language bias in multilingual representations"): for each
  language, the top-k right singular vectors of that language's own embedding matrix (not
  centred: the leading direction carries the language's identity) are projected out of its rows.
- `mean_subspace`: project every row off the top-k right singular vectors of the centred
  language means (the language-mean form of Xie et al., 2022): directions along which the
  languages' centroids differ, shared by all languages. It was named `lir` before xrdiag 0.2.
"""

from __future__ import annotations

import numpy as np

from xrdiag.errors import UserError

CORRECTIONS: tuple[str, ...] = ("none", "center", "lir", "mean_subspace")


def l2_normalise(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length as float32 (all-zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32)


def _language_means(x: np.ndarray, langs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(per-row language index, per-language mean vectors) in float64."""
    names, inverse = np.unique(langs, return_inverse=True)
    return inverse, np.stack([x[inverse == i].mean(axis=0) for i in range(names.size)])


def center_languages(x: np.ndarray, langs: np.ndarray) -> np.ndarray:
    """Subtract each language's mean vector from its rows (Libovický et al., 2020)."""
    x = np.asarray(x, dtype=np.float64)
    inverse, means = _language_means(x, langs)
    return x - means[inverse]


def remove_language_directions(x: np.ndarray, langs: np.ndarray, components: int) -> np.ndarray:
    """LIR (Yang et al., 2021): per language, project its rows off its top singular directions."""
    x = np.asarray(x, dtype=np.float64).copy()
    for lang in np.unique(langs):
        rows = langs == lang
        basis = np.linalg.svd(x[rows], full_matrices=False)[2][:components]
        x[rows] -= (x[rows] @ basis.T) @ basis
    return x


def remove_mean_subspace(x: np.ndarray, langs: np.ndarray, components: int) -> np.ndarray:
    """Project rows off the top singular directions of the centred language means."""
    x = np.asarray(x, dtype=np.float64)
    _, means = _language_means(x, langs)
    centred = means - means.mean(axis=0)
    basis = np.linalg.svd(centred, full_matrices=False)[2][:components]
    return x - (x @ basis.T) @ basis


def check_components(corrections: list[str], components: int, n_langs: int, dim: int) -> None:
    """`--lir-components` must leave something: below the language count for mean_subspace
    (there are n - 1 centred mean directions), below the dimension for lir."""
    if "mean_subspace" in corrections and not 1 <= components < n_langs:
        raise UserError(
            f"--lir-components: {components} must be between 1 and the number of languages "
            f"minus one ({n_langs - 1}) for mean_subspace"
        )
    if "lir" in corrections and not 1 <= components < dim:
        raise UserError(f"--lir-components: {components} must be between 1 and {dim - 1}")


def corrected_embeddings(
    x: np.ndarray, langs: np.ndarray, correction: str, components: int = 1
) -> np.ndarray:
    """Apply one correction (see CORRECTIONS) and L2-normalise."""
    if correction == "center":
        x = center_languages(x, langs)
    elif correction == "lir":
        x = remove_language_directions(x, langs, components)
    elif correction == "mean_subspace":
        x = remove_mean_subspace(x, langs, components)
    elif correction != "none":
        raise UserError(f"correction: unknown correction {correction!r}; expected {CORRECTIONS}")
    return l2_normalise(x)
