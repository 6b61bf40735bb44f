"""Run small dense linear algebra on one BLAS thread.

The probes' lbfgs steps ([n, 384] x [384, classes] products) and the 384 x 384 eigendecomposition
of the isotropy measure are too small to share between threads: on this project's 2-core
machines OpenBLAS threads spend their time waking and waiting, and any other load makes it far
worse. Measured on the bundled corpus capped at 100 ids per domain (7,644 rows, one layer, the
machine under load): language probe 2.8 s on one thread vs 13.1 s on two, PAD 8.0 s vs 49.1 s,
geometry 0.65 s vs 3.4 s. Large products (retrieval, CKA) keep every thread.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def single_blas_thread() -> Iterator[None]:
    """Limit BLAS (and OpenMP) to one thread inside the block; restore the previous limits after."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield
