"""Classes of equal rows: the ids ``np.unique(axis=0, return_inverse=True)`` gives, by a lexsort."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def row_classes(*columns: npt.ArrayLike) -> np.ndarray:
    """Class id of each row of ``columns``: rows equal in every column share a class.

    Ids count the distinct rows in lexicographic order (first column first), exactly as
    ``np.unique(np.column_stack(columns), axis=0, return_inverse=True)[1]``, without building and
    sorting a structured copy of the rows (several times faster on a million rows).

    >>> row_classes([2, 1, 2, 1], [0.5, 0.5, 0.5, 0.25]).tolist()
    [2, 1, 2, 0]
    """
    cols = [np.asarray(c) for c in columns]
    n = len(cols[0])
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.lexsort(cols[::-1])
    new = np.zeros(n, dtype=bool)
    new[0] = True
    for column in cols:
        ranked = column[order]
        new[1:] |= ranked[1:] != ranked[:-1]
    classes = np.empty(n, dtype=np.int64)
    classes[order] = np.cumsum(new) - 1
    return classes
