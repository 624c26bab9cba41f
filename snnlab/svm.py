"""Linear SVM read-out of binary spike features, and the choice of its ``C`` on held-out data.

:class:`LinearSVM` is scikit-learn's ``LinearSVC`` (one-vs-rest, squared hinge, L2, the
intercept regularised as liblinear does) made fast for 0/1 features; :func:`select_svm_c`
chooses ``C`` on held-out *training* samples, walking a grid from small to large ``C``.
"""
from __future__ import annotations

import math
import os
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from ._numba import numba

__all__ = ["LinearSVM", "select_svm_c", "SVM_C_GRID"]

#: Candidate values of ``C`` (Kheradpisheh et al.'s 2.4 among them), walked from the smallest.
SVM_C_GRID = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 2.4)


if numba is not None:

    @numba.njit(cache=True, nogil=True)
    def _dual_cd(indptr, indices, y, alpha, w, c, eps, max_iter, seed):
        # liblinear's dual coordinate descent for the L2-regularised squared-hinge SVM
        # (Hsieh et al. 2008, liblinear's solve_l2r_l1l2_svc with L2 loss), with its shrinking,
        # on binary rows (CSR without values) and the intercept as a last feature of value 1.
        # alpha (n,) >= 0 may hold a warm start; w (d + 1,) must equal sum_i y_i alpha_i x_i.
        # Returns the number of passes.
        n = len(y)
        bias = len(w) - 1
        diag = 0.5 / c
        np.random.seed(seed)
        index = np.arange(n)
        qd = np.empty(n)
        for i in range(n):
            qd[i] = diag + (indptr[i + 1] - indptr[i]) + 1.0
        active = n
        pg_max_old = np.inf
        it = 0
        while it < max_iter:
            pg_max, pg_min = -np.inf, np.inf
            for s in range(active):  # a random order of the active samples
                j = s + np.random.randint(active - s)
                index[s], index[j] = index[j], index[s]
            s = 0
            while s < active:
                i = index[s]
                yi = y[i]
                dot = w[bias]
                for p in range(indptr[i], indptr[i + 1]):
                    dot += w[indices[p]]
                g = yi * dot - 1.0 + alpha[i] * diag
                pg = 0.0
                if alpha[i] == 0.0:
                    if g > pg_max_old:  # shrink: it stays at the bound
                        active -= 1
                        index[s], index[active] = index[active], index[s]
                        continue
                    if g < 0.0:
                        pg = g
                else:
                    pg = g
                pg_max = max(pg_max, pg)
                pg_min = min(pg_min, pg)
                if abs(pg) > 1.0e-12:
                    old = alpha[i]
                    alpha[i] = max(old - g / qd[i], 0.0)
                    d = (alpha[i] - old) * yi
                    w[bias] += d
                    for p in range(indptr[i], indptr[i + 1]):
                        w[indices[p]] += d
                s += 1
            it += 1
            if pg_max - pg_min <= eps:
                if active == n:
                    break
                active = n  # check every sample once more before stopping
                pg_max_old = np.inf
                continue
            pg_max_old = pg_max if pg_max > 0 else np.inf
        return it


class LinearSVM:
    r"""scikit-learn's ``LinearSVC(C)`` (one-vs-rest, squared hinge), made fast for binary
    spike features.

    For each class :math:`k`: :math:`\min_{w,b} \tfrac12(\|w\|^2 + b^2) + C\sum_i
    \max(0, 1 - y_{ik}(w^\top x_i + b))^2`: the objective of scikit-learn's ``LinearSVC`` and
    liblinear's. By default it is solved by liblinear's dual coordinate descent (Hsieh et al.
    2008, with its shrinking and stopping rule) compiled with numba for 0/1 features: the
    features stay one sparse matrix for every class and every ``C`` (liblinear converts its
    input on every call), the columns that are 0 for every training sample are dropped (their
    weights are 0 at the optimum), the binary problems run in parallel threads, and a fit can
    start from the dual variables of an earlier one (:func:`select_svm_c` walks its grid so).
    ``dual=False``, or no numba, runs scikit-learn's liblinear itself (primal or dual), the
    reference it is tested against.

    Args:
        c: the regularisation constant ``C`` (positive).
        tol: liblinear's stopping tolerance (scikit-learn's default ``1e-4``).
        max_iter: liblinear's iteration cap.
        n_jobs: threads (default: one per CPU core, at most one per class).
        dual: the dual solver (default) or scikit-learn's primal trust-region Newton solver.

    Shape:
        - fit: x :math:`(N, D)` (0/1 features, tensor or array), y :math:`(N,)` int labels.
        - predict: x :math:`(M, D)` -> :math:`(M,)` int64 tensor.

    Example:
        >>> x = torch.tensor([[1, 0], [0, 1], [1, 0], [0, 1]], dtype=torch.uint8)
        >>> LinearSVM(c=10).fit(x, torch.tensor([0, 1, 0, 1])).predict(x).tolist()
        [0, 1, 0, 1]
    """

    def __init__(self, c: float = 2.4, tol: float = 1e-4, max_iter: int = 1000, n_jobs: int | None = None,
                 dual: bool = True):
        if isinstance(c, bool) or not isinstance(c, (int, float)) or not 0 < c < math.inf:
            raise ValueError(f"c: expected a positive number, got {c!r}")
        if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not 0 < tol < math.inf:
            raise ValueError(f"tol: expected a positive number, got {tol!r}")
        if n_jobs is not None and (isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs < 1):
            raise ValueError(f"n_jobs: expected a positive int or None, got {n_jobs!r}")
        self.c, self.tol, self.max_iter, self.n_jobs, self.dual = float(c), float(tol), int(max_iter), n_jobs, bool(dual)

    @staticmethod
    def _sparse(x: np.ndarray):
        # (CSR matrix of the columns that fire in x, those columns), built from the nonzeros
        # of x in place: scipy's dense -> CSR path and a copy of the used columns cost ~3x more
        import scipy.sparse as sp

        rows, cols = np.nonzero(x)
        columns = np.flatnonzero(np.bincount(cols, minlength=x.shape[1]))
        remap = np.zeros(x.shape[1], dtype=np.int32)
        remap[columns] = np.arange(len(columns), dtype=np.int32)
        indptr = np.zeros(len(x) + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=len(x)), out=indptr[1:])
        return sp.csr_matrix((np.ones(len(cols)), remap[cols], indptr), shape=(len(x), len(columns))), columns

    @staticmethod
    def _array(x, name="x") -> np.ndarray:
        x = x.numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
        if x.ndim != 2:
            raise ValueError(f"{name}: expected a 2-D (samples, features) matrix, got shape {x.shape}")
        return x

    def fit(self, x, y, warm: "LinearSVM | None" = None) -> "LinearSVM":
        """Fit on features ``x (N, D)`` and labels ``y (N,)``; returns ``self``. ``warm``: a fit
        (same classes) on the first samples of ``x``, whose dual variables start this one."""
        xn = self._array(x)
        yn = (y.numpy() if isinstance(y, torch.Tensor) else np.asarray(y)).astype(np.int64)
        if yn.shape != (len(xn),):
            raise ValueError(f"y: expected shape ({len(xn)},) to match x, got {yn.shape}")
        if len(np.unique(yn)) < 2:
            raise ValueError(f"y: expected at least 2 classes, got {np.unique(yn).tolist()}")
        return self._fit_sparse(*self._sparse(xn), yn, warm)

    def _fit_sparse(self, xs, columns, yn, warm: "LinearSVM | None" = None) -> "LinearSVM":
        # fit on the CSR matrix xs of the features' used columns (see _sparse); warm: a fit on
        # the first samples of the same data, whose dual variables start this one
        self.classes_ = np.unique(yn)
        self.columns_ = columns
        problems = self.classes_[1:] if len(self.classes_) == 2 else self.classes_  # one-vs-rest, as sklearn
        jobs = min(self.n_jobs or os.cpu_count() or 1, len(problems))
        if self.dual and numba is not None:
            n = xs.shape[0]
            indptr, indices = xs.indptr.astype(np.int64), xs.indices.astype(np.int32)
            alpha = np.zeros((len(problems), n))
            if warm is not None and warm.alpha_.shape[0] == len(problems):
                m = min(n, warm.alpha_.shape[1])
                alpha[:, :m] = warm.alpha_[:, :m]
            signs = np.where(yn[None, :] == problems[:, None], 1.0, -1.0)
            # w = sum_i y_i alpha_i x_i (intercept last), consistent with a warm start
            w = np.zeros((len(problems), xs.shape[1] + 1))
            w[:, :-1] = (xs.T @ (signs * alpha).T).T
            w[:, -1] = (signs * alpha).sum(1)

            def one(k):
                return _dual_cd(indptr, indices, signs[k], alpha[k], w[k], self.c, self.tol, self.max_iter, k + 1)

            with ThreadPoolExecutor(jobs) as pool:
                iters = max(pool.map(one, range(len(problems))))
            self.coef_, self.intercept_, self.alpha_ = w[:, :-1], w[:, -1], alpha
        else:  # scikit-learn's liblinear (the reference)
            from sklearn.svm import LinearSVC

            def svc():
                return LinearSVC(C=self.c, dual=self.dual, tol=self.tol, max_iter=self.max_iter)

            if jobs == 1 or len(problems) == 1:  # one call: liblinear converts the data once
                fitted = svc().fit(xs, yn)
                self.coef_, self.intercept_, iters = fitted.coef_, fitted.intercept_, fitted.n_iter_
            else:
                def one(cls):
                    s = svc().fit(xs, np.where(yn == cls, 1, -1))
                    return s.coef_[0], s.intercept_[0], s.n_iter_

                with ThreadPoolExecutor(jobs) as pool:
                    out = list(pool.map(one, problems))
                self.coef_ = np.stack([w for w, _, _ in out])
                self.intercept_ = np.array([b for _, b, _ in out])
                iters = max(i for _, _, i in out)
        self.n_iter_ = int(iters)
        self.converged_ = self.n_iter_ < self.max_iter
        if not self.converged_:
            warnings.warn(f"LinearSVM: the solver stopped at max_iter={self.max_iter} before reaching tol={self.tol} "
                          f"(C = {self.c:g}); the fit is approximate", RuntimeWarning, stacklevel=3)
        return self

    def state_dict(self) -> dict:
        """The fitted read-out as tensors, for ``torch.save``: what :meth:`from_state_dict` rebuilds.

        Math: the scores are ``x[:, columns_] @ coef_.T + intercept_``; these four arrays and
        the settings (``c``, ``tol``, ``max_iter``, ``dual``) are all a prediction needs.

        Shape:
            - ``coef_`` :math:`(K, D_{used})` float64, ``intercept_`` :math:`(K,)` float64,
              ``columns_`` :math:`(D_{used},)` int64, ``classes_`` :math:`(C,)` int64
              (:math:`K = C`, or 1 for two classes).

        Example:
            >>> x = torch.tensor([[1, 0], [0, 1]], dtype=torch.uint8)
            >>> sorted(LinearSVM(1.0).fit(x, torch.tensor([0, 1])).state_dict())
            ['c', 'classes_', 'coef_', 'columns_', 'dual', 'intercept_', 'max_iter', 'tol']
        """
        if not hasattr(self, "coef_"):
            raise ValueError("state_dict: this LinearSVM is not fitted; call fit() first")
        return {"coef_": torch.from_numpy(np.asarray(self.coef_, dtype=np.float64).copy()),
                "intercept_": torch.from_numpy(np.asarray(self.intercept_, dtype=np.float64).copy()),
                "columns_": torch.from_numpy(np.asarray(self.columns_, dtype=np.int64).copy()),
                "classes_": torch.from_numpy(np.asarray(self.classes_, dtype=np.int64).copy()),
                "c": self.c, "tol": self.tol, "max_iter": self.max_iter, "dual": self.dual}

    @classmethod
    def from_state_dict(cls, state: dict) -> "LinearSVM":
        """A fitted :class:`LinearSVM` from :meth:`state_dict`; predicts exactly as the one saved.

        Args:
            state: ``{"coef_", "intercept_", "columns_", "classes_", "c", "tol", "max_iter",
                "dual"}`` as :meth:`state_dict` gives it.

        Raises:
            ValueError: a key is missing or the arrays' shapes or types do not fit together.

        Shape:
            - see :meth:`state_dict`.

        Example:
            >>> x = torch.tensor([[1, 0], [0, 1]], dtype=torch.uint8)
            >>> svm = LinearSVM(1.0).fit(x, torch.tensor([3, 7]))
            >>> LinearSVM.from_state_dict(svm.state_dict()).predict(x).tolist()
            [3, 7]
        """
        keys = ("coef_", "intercept_", "columns_", "classes_", "c", "tol", "max_iter", "dual")
        missing = [k for k in keys if not isinstance(state, dict) or k not in state]
        if missing:
            raise ValueError(f"state: expected a LinearSVM state_dict, missing {', '.join(missing)}")
        arrays = {}
        for k in keys[:4]:
            v = state[k]
            if not isinstance(v, torch.Tensor):
                raise ValueError(f"state: {k} should be a tensor, got {type(v).__name__}")
            arrays[k] = v.detach().cpu().numpy()
        coef, intercept, columns, classes = (arrays[k] for k in keys[:4])
        n_problems = 1 if len(classes) == 2 else len(classes)
        if (coef.ndim != 2 or coef.shape[0] != n_problems or intercept.shape != (n_problems,)
                or columns.shape != (coef.shape[1],) or classes.ndim != 1 or len(classes) < 2
                or not np.issubdtype(columns.dtype, np.integer) or not np.issubdtype(classes.dtype, np.integer)
                or (len(columns) and columns.min() < 0)):
            raise ValueError(f"state: shapes do not fit: coef_ {coef.shape}, intercept_ {intercept.shape}, "
                             f"columns_ {columns.shape} ({columns.dtype}), classes_ {classes.shape} ({classes.dtype})")
        svm = cls(state["c"], tol=state["tol"], max_iter=state["max_iter"], dual=state["dual"])
        svm.coef_, svm.intercept_, svm.columns_, svm.classes_ = coef, intercept, columns, classes
        return svm

    def decision_function(self, x) -> np.ndarray:
        """Scores ``(M, classes)`` (``(M,)`` for two classes, as scikit-learn)."""
        x = torch.from_numpy(np.ascontiguousarray(self._array(x)[:, self.columns_]))
        w = torch.from_numpy(np.ascontiguousarray(self.coef_.T))
        scores = torch.cat([x[a:a + 4096].double() @ w for a in range(0, len(x), 4096)]).numpy() + self.intercept_
        return scores[:, 0] if scores.shape[1] == 1 else scores

    def predict(self, x) -> torch.Tensor:
        """Class labels ``(M,)`` int64 of features ``x (M, D)``."""
        s = self.decision_function(x)
        idx = (s > 0).astype(np.int64) if s.ndim == 1 else s.argmax(1)
        return torch.from_numpy(self.classes_[idx])


def select_svm_c(features, labels, grid=SVM_C_GRID, val_fraction: float = 1 / 6, tol: float = 1e-4,
                 patience: int | None = 2, n_jobs: int | None = None, dual: bool = True, return_fit: bool = False):
    r"""Choose the SVM's ``C`` on held-out *training* samples: :math:`\arg\max_C \mathrm{acc}_{val}(C)`.

    Fits :class:`LinearSVM` on the first ``1 - val_fraction`` of the samples for each ``C``
    and scores it on the rest (the test set is never seen). The grid is walked from the
    smallest ``C`` up, each fit starting from the previous one's solution, and the walk stops
    once the validation accuracy has fallen ``patience`` times in a row: past the best ``C`` a
    linear SVM on these features only overfits more, and large ``C`` are the slow fits
    (``patience=None`` fits the whole grid). Ties go to the smaller ``C``.

    Args:
        features: binary training features.
        labels: their int labels.
        grid: candidate values of ``C``.
        val_fraction: share of the samples (the last ones) held out for validation.
        tol: the solver's stopping tolerance.
        patience: falls in a row that end the walk (``None``: never).
        n_jobs: threads of each fit (default: one per CPU core).
        dual: the solver (see :class:`LinearSVM`).
        return_fit: also return the fit at the chosen ``C`` (a warm start for the final fit).

    Returns:
        ``(best_c, {C: validation accuracy in %})`` over the values fitted (and the fit).

    Shape:
        - features: :math:`(N, D)`; labels: :math:`(N,)`.

    Example:
        >>> x = torch.tensor([[1, 0], [0, 1]] * 6, dtype=torch.uint8)
        >>> select_svm_c(x, torch.tensor([0, 1] * 6), grid=(0.1, 1.0), val_fraction=1/3)[0]
        0.1
    """
    y = torch.as_tensor(labels).long()
    try:
        grid = sorted(float(c) for c in grid)
    except (TypeError, ValueError):
        raise ValueError(f"grid: expected positive numbers, got {grid!r}") from None
    if not grid:
        raise ValueError("grid: expected at least one value of C, got none")
    if not all(0 < c < math.inf for c in grid):
        raise ValueError(f"grid: expected positive numbers, got {grid}")
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction: expected a number in (0, 1), got {val_fraction!r}")
    if patience is not None and (isinstance(patience, bool) or not isinstance(patience, int) or patience < 1):
        raise ValueError(f"patience: expected a positive int or None, got {patience!r}")
    n_fit = len(y) - max(1, round(val_fraction * len(y)))
    if n_fit < 2:
        raise ValueError(f"features: expected enough samples for a fit and a validation split, got {len(y)}")
    x = LinearSVM._array(features, "features")
    if len(x) != len(y):
        raise ValueError(f"labels: expected {len(x)} labels to match features, got {len(y)}")
    if len(torch.unique(y[:n_fit])) < 2:
        raise ValueError(f"labels: expected at least 2 classes among the first {n_fit} samples")
    xs, columns = LinearSVM._sparse(x[:n_fit])  # once, shared by every fit
    yf, xv, yv = y[:n_fit].numpy(), x[n_fit:], y[n_fit:]
    scores, fits, falls, prev = {}, {}, 0, None
    for c in grid:
        prev = LinearSVM(c, tol=tol, n_jobs=n_jobs, dual=dual)._fit_sparse(xs, columns, yf, prev)
        s = 100 * float((prev.predict(xv) == yv).double().mean())
        if scores:
            falls = falls + 1 if s < scores[max(scores)] else 0
        scores[c], fits[c] = s, prev
        if patience is not None and falls >= patience:
            break
    best = max(scores, key=scores.get)  # first maximum: the smallest C among ties
    return (best, scores, fits[best]) if return_fit else (best, scores)
