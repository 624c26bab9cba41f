"""Analysis helpers for the reproduction notebooks (07-11).

- features in pixel space through pooling layers (:func:`reconstruct_layer`) and per class
  (:func:`class_kernels`);
- confusion matrices (:func:`confusion_matrix`, from :mod:`snnlab.metrics`);
- comparing representation spaces: t-SNE (:func:`embed_tsne`), cross-validated k-NN accuracy
  and silhouette score (:func:`space_scores`), a linear probe with its ``C`` chosen on
  validation (:func:`linear_probe`), all three over several random draws of digits
  (:func:`compare_spaces`);
- the Kheradpisheh 2018 protocol in memory on the first ``N`` samples
  (:func:`run_kheradpisheh`, :func:`kheradpisheh_features`) and a time-steps sweep of it
  (:func:`time_steps_sweep`);
- timing and profiling (:func:`throughput`, :func:`profile_calls`) and Markdown tables
  (:func:`markdown_table`).

scikit-learn is imported inside the functions that need it.
"""
from __future__ import annotations

import dataclasses
import math
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F

from ._checks import check_positive_int, check_tensor
from .metrics import confusion_matrix

__all__ = [
    "reconstruct_layer",
    "class_kernels",
    "confusion_matrix",
    "kheradpisheh_features",
    "run_kheradpisheh",
    "time_steps_sweep",
    "embed_tsne",
    "space_scores",
    "linear_probe",
    "compare_spaces",
    "read_results",
    "provenance",
    "run_info",
    "throughput",
    "profile_calls",
    "markdown_table",
]


# --- features in pixel space ---------------------------------------------------------------
def reconstruct_layer(weight, lower, pool: int = 1, spacing: int = 1) -> torch.Tensor:
    r"""Project a deeper layer's kernels to pixel space through a pooling layer.

    :math:`R_f = \sum_{c,i,j} W_{f,c,i,j}\; \mathrm{shift}_{(i,j)\,p\,\delta}\big(B_{p,\delta} \ast R_c\big)`,
    where :math:`R_c` is the pixel-space pattern of lower feature :math:`c`, :math:`B_{p,\delta}`
    the :math:`p \times p` pooling window (mean of :math:`p^2` copies of :math:`R_c` spaced
    :math:`\delta` pixels apart) and :math:`p\,\delta` the pixel stride of the kernel's taps.
    With ``pool = spacing = 1`` this is :func:`snnlab.viz.reconstruct_features` one layer up.

    Args:
        weight: the deeper layer's kernels.
        lower: pixel-space patterns of its input features (e.g. from
            :func:`snnlab.viz.reconstruct_features` or a previous call).
        pool: size (and stride) of the pooling between the two layers, in lower-layer units.
        spacing: pixel distance between neighbouring lower-layer units.

    Shape:
        - weight: :math:`(F, C, k_h, k_w)`; lower: :math:`(C, H, W)`.
        - Output: :math:`(F, (k_h - 1) p \delta + H + (p - 1)\delta, \dots)`.

    Example:
        >>> reconstruct_layer(torch.ones(3, 2, 2, 2), torch.ones(2, 11, 11), pool=2).shape
        torch.Size([3, 14, 14])
    """
    check_tensor(weight, "weight", 4)
    check_tensor(lower, "lower", 3)
    check_positive_int(pool, "pool")
    check_positive_int(spacing, "spacing")
    if lower.shape[0] != weight.shape[1]:
        raise ValueError(f"lower: expected {weight.shape[1]} patterns (one per input channel of weight), "
                         f"got {lower.shape[0]}")
    low = lower.detach().float().to(weight.device)[:, None]
    if pool > 1:
        box = torch.zeros(1, 1, (pool - 1) * spacing + 1, (pool - 1) * spacing + 1, device=weight.device)
        box[..., ::spacing, ::spacing] = 1.0 / pool ** 2
        low = F.conv_transpose2d(low, box)
    return F.conv_transpose2d(weight.detach().float(), low, stride=pool * spacing).squeeze(1)


def class_kernels(weight, decision_map, over: str = "channels") -> torch.Tensor:
    r"""Mean kernel of each class of a decision layer, reduced over input channels or space.

    ``over="channels"``: :math:`K_c[y, x] = \frac{1}{|F_c|}\sum_{f \in F_c}\sum_i W_{f,i,y,x}`
    (where the class's neurons want input spikes); ``over="space"``:
    :math:`K_c[i] = \frac{1}{|F_c|}\sum_{f \in F_c}\sum_{y,x} W_{f,i,y,x}` (which input
    features they listen to). :math:`F_c` = features whose ``decision_map`` entry is ``c``.

    Args:
        weight: decision-layer kernels.
        decision_map: class of each feature (``0 .. C-1``).
        over: ``"channels"`` or ``"space"``.

    Shape:
        - weight: :math:`(F, C_{in}, k_h, k_w)`; decision_map: :math:`(F,)`.
        - Output: :math:`(C, k_h, k_w)` or :math:`(C, C_{in})` with ``C = max(decision_map) + 1``.

    Example:
        >>> w = torch.zeros(4, 3, 2, 2); w[2:] = 1
        >>> class_kernels(w, torch.tensor([0, 0, 1, 1]))[:, 0, 0].tolist()
        [0.0, 3.0]
    """
    check_tensor(weight, "weight", 4)
    check_tensor(decision_map, "decision_map", 1)
    if over not in ("channels", "space"):
        raise ValueError(f"over: expected 'channels' or 'space', got {over!r}")
    if len(decision_map) != weight.shape[0]:
        raise ValueError(f"decision_map: expected {weight.shape[0]} entries (one per feature), got {len(decision_map)}")
    dmap = decision_map.detach().cpu().long()
    if len(dmap) and int(dmap.min()) < 0:
        raise ValueError("decision_map: expected classes >= 0")
    w = weight.detach().float().cpu()
    red = w.sum(1) if over == "channels" else w.sum((2, 3))
    n_classes = int(dmap.max()) + 1
    out = torch.zeros(n_classes, *red.shape[1:])
    out.index_add_(0, dmap, red)
    counts = torch.bincount(dmap, minlength=n_classes).clamp_min(1).float()
    return out / counts.view(-1, *([1] * (red.dim() - 1)))


# --- the Kheradpisheh 2018 protocol in memory ----------------------------------------------
@torch.no_grad()
def kheradpisheh_features(net, times, batch_size: int = 512) -> dict:
    r"""Binary spike features of both layers of a :class:`~snnlab.models.kheradpisheh2018.Kheradpisheh2018`.

    ``layer1``: pooled conv1 spikes, :math:`[\max_{2\times2} (W_1 \star S_{T-1} > \theta_1)]`
    (what conv2 sees); ``layer2``: the network's output (pooled conv2 spikes, as ``net(times)``).

    Args:
        net: a Kheradpisheh 2018 network.
        times: input spike times (``T`` = no spike).
        batch_size: samples per convolution.

    Shape:
        - times: :math:`(B, 2, 28, 28)` uint8.
        - Output: ``{"layer1": (B, 32 * 15 * 15), "layer2": (B, 150 * 9 * 9)}`` uint8.

    Example:
        >>> from snnlab.models.kheradpisheh2018 import Kheradpisheh2018
        >>> f = kheradpisheh_features(Kheradpisheh2018(seed=1), torch.full((2, 2, 28, 28), 15, dtype=torch.uint8))
        >>> f["layer1"].shape, f["layer2"].shape
        (torch.Size([2, 7200]), torch.Size([2, 12150]))
    """
    from ._batching import chunks
    from .layers import block_pool, last_slice, pad_times

    check_tensor(times, "times", 4)
    check_positive_int(batch_size, "batch_size")
    cfg = net.config
    dev = net.conv1.weight.device
    l1, l2 = [], []
    for a, b in chunks(len(times), batch_size):
        x = last_slice(pad_times(times[a:b].to(dev), net.conv1.padding, cfg.time_steps), cfg.time_steps)
        x = block_pool(F.conv2d(x, net.conv1.weight) > cfg.thresholds[0], 2, 1)
        l1.append(x.flatten(1).to(torch.uint8).cpu())
        x = F.conv2d(F.pad(x, (1, 1, 1, 1)).float(), net.conv2.weight) > cfg.thresholds[1]
        l2.append(block_pool(x, 2, 1).flatten(1).to(torch.uint8).cpu())
    empty = torch.empty(0, 0, dtype=torch.uint8)
    return {"layer1": torch.cat(l1) if l1 else empty, "layer2": torch.cat(l2) if l2 else empty}


def run_kheradpisheh(config=None, seed: int = 1, device="cpu", root=None, images=None, log=None,
                     classify: bool = True, svm_tol: float = 1e-4) -> dict:
    r"""The Kheradpisheh 2018 protocol in memory: STDP on conv1 then conv2, binary features,
    linear SVM, test accuracy :math:`100 \cdot \#\{\hat y = y\} / N_{test}`.

    The same steps as :func:`snnlab.models.kheradpisheh2018.reproduce` (same network, rules,
    rate schedule and SVM), but only the first ``N`` training and test images are encoded
    (no full-split cache, so a new ``time_steps`` costs seconds), and nothing is written.

    Args:
        config: a :class:`~snnlab.models.kheradpisheh2018.Kheradpisheh2018Config`
            (default: ``Kheradpisheh2018Config.quick()``).
        seed: seed of the initial weights.
        device: where to train.
        root: MNIST data root.
        images: optional ``((train_x, train_y), (test_x, test_y))`` uint8 images and labels,
            to avoid reading MNIST again in a loop.
        log: function for one-line messages (``None``: quiet).
        classify: compute the features and fit the SVM; ``False`` stops after STDP and
            returns only ``net``, ``history``, ``seconds`` and ``wall_s``.
        svm_tol: liblinear's stopping tolerance (``1e-4``, scikit-learn's default, is the
            protocol's; a looser one stops earlier on features that are far from separable).

    Returns:
        ``{"net", "time_steps", "test_accuracy", "train_accuracy", "test_silent",
        "feature_density", "input_spikes_per_step", "confusion", "history",
        "seconds": {phase: s}, "wall_s"}`` (accuracies in %).

    Shape:
        - images: uint8 :math:`(N, 28, 28)` with int labels :math:`(N,)`, per split.
        - confusion: :math:`(10, 10)` int64 (rows = true digit).

    Example:
        >>> from snnlab.models.kheradpisheh2018 import Kheradpisheh2018Config
        >>> x = torch.randint(0, 256, (30, 28, 28), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
        >>> y = torch.arange(30) % 2
        >>> cfg = Kheradpisheh2018Config(epochs=(1, 1), train_samples=(8, 8), svm_train_samples=30, test_samples=30)
        >>> r = run_kheradpisheh(cfg, images=((x, y), (x, y)))
        >>> tuple(r["confusion"].shape), int(r["confusion"].sum()), sorted(r["seconds"])[:2]
        ((10, 10), 30, ['conv1 STDP', 'conv1 input'])
    """
    from .coding import Encoder
    from .data import load_mnist
    from .models.kheradpisheh2018 import Kheradpisheh2018, Kheradpisheh2018Config, train_layers
    from .models.kheradpisheh2018 import classify as svm_scores
    from .runs import PhaseTimer
    from ._batching import chunks

    cfg = Kheradpisheh2018Config.quick() if config is None else config
    if not isinstance(cfg, Kheradpisheh2018Config):
        raise TypeError(f"config: expected a Kheradpisheh2018Config, got {type(cfg).__name__}")
    if not (isinstance(svm_tol, (int, float)) and svm_tol > 0):
        raise ValueError(f"svm_tol: expected a positive number, got {svm_tol!r}")
    dev = torch.device(device)
    log = log or (lambda *_: None)
    timer = PhaseTimer()
    t0 = time.perf_counter()
    if images is None:
        images = (load_mnist(True, root), load_mnist(False, root))
    (xtr, ytr), (xte, yte) = images
    n_train = max(max(cfg.train_samples), cfg.svm_train_samples if classify else 0)
    if len(xtr) < n_train or len(xte) < cfg.test_samples:
        raise ValueError(f"images: need {n_train} training and {cfg.test_samples} test images, "
                         f"got {len(xtr)} and {len(xte)}")
    enc = Encoder.kheradpisheh2018(time_steps=cfg.time_steps).to(dev)
    with timer("encoding"):
        tr = torch.cat([enc.encode_batch(xtr[a:b].to(dev)).cpu() for a, b in chunks(n_train, 2000)])
        te = torch.cat([enc.encode_batch(xte[a:b].to(dev)).cpu() for a, b in chunks(cfg.test_samples, 2000)]) \
            if classify else None
    net = Kheradpisheh2018(cfg, seed=seed).to(dev)
    state = {"done": [0, 0], "sched": [None, None], "stdp_history": []}
    train_layers(net, tr, state, timer, log=log)
    if not classify:
        return {"net": net, "time_steps": cfg.time_steps, "history": state["stdp_history"],
                "seconds": dict(timer.seconds), "wall_s": time.perf_counter() - t0}
    with timer("features"):
        ftr = net(tr[:cfg.svm_train_samples])
        fte = net(te)
    with timer("svm"):
        scores = svm_scores(ftr, ytr[:cfg.svm_train_samples], fte, yte[:cfg.test_samples], cfg.svm_c, svm_tol,
                            cfg.svm_c_grid, cfg.svm_val_fraction)
    spiking = (te < cfg.time_steps).flatten(1).sum(1).float()
    out = {
        "net": net,
        "time_steps": cfg.time_steps,
        **scores,
        "input_spikes_per_step": float(spiking.mean() / cfg.time_steps),
        "history": state["stdp_history"],
        "seconds": dict(timer.seconds),
        "wall_s": time.perf_counter() - t0,
    }
    log(f"T = {cfg.time_steps}: test {out['test_accuracy']:.2f}% in {out['wall_s']:.1f} s")
    return out


def time_steps_sweep(config=None, time_steps=(10, 15, 20, 25, 30), seed: int = 1, device="cpu", root=None,
                     log=None, svm_tol: float = 1e-4, images=None) -> list:
    r"""Run :func:`run_kheradpisheh` once per number of time steps :math:`T`, all else equal.

    Rank-order coding spreads the :math:`n` spiking inputs over :math:`T` steps,
    :math:`\approx n / T` per step (ties); each row reports that figure with the accuracy and
    the wall time.

    Args:
        config: base config; only ``time_steps`` changes between runs.
        time_steps: the values of :math:`T` (each in ``1 .. 255``).
        seed, device, root, log, svm_tol, images: as in :func:`run_kheradpisheh` (MNIST is
            read once for all runs when ``images`` is ``None``).

    Returns:
        One dict per :math:`T`: ``time_steps, test_accuracy, train_accuracy, test_silent,
        feature_density, input_spikes_per_step, wall_s, seconds`` and ``conv1_convergence``,
        ``conv2_convergence`` (:math:`\mathrm{mean}\,w(1-w)` after training; no network).

    Example:
        >>> from snnlab.models.kheradpisheh2018 import Kheradpisheh2018Config
        >>> x = torch.randint(0, 256, (30, 28, 28), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
        >>> cfg = Kheradpisheh2018Config(epochs=(1, 0), train_samples=(8, 8), svm_train_samples=30, test_samples=30)
        >>> rows = time_steps_sweep(cfg, (5, 10), images=((x, torch.arange(30) % 2),) * 2)
        >>> [r["time_steps"] for r in rows], rows[0]["input_spikes_per_step"] > rows[1]["input_spikes_per_step"]
        ([5, 10], True)
    """
    from .data import load_mnist
    from .models.kheradpisheh2018 import Kheradpisheh2018Config

    cfg = Kheradpisheh2018Config.quick() if config is None else config
    if not isinstance(cfg, Kheradpisheh2018Config):
        raise TypeError(f"config: expected a Kheradpisheh2018Config, got {type(cfg).__name__}")
    ts = list(time_steps)
    for t in ts:
        check_positive_int(t, "time_steps", maximum=255)
    if not ts:
        return []
    if images is None:
        images = (load_mnist(True, root), load_mnist(False, root))
    rows = []
    for t in ts:
        r = run_kheradpisheh(dataclasses.replace(cfg, time_steps=t), seed, device, root, images, log,
                             svm_tol=svm_tol)
        row = {k: v for k, v in r.items() if k not in ("net", "confusion", "history")}
        for h in r["history"]:  # the last epoch of each layer: mean w(1 - w), 0 = converged
            row[f"{h['layer']}_convergence"] = h["mean_w_1_minus_w"]
        rows.append(row)
    return rows


# --- comparing representation spaces ------------------------------------------------------
def _matrix(x, name="x") -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D (samples, features) matrix, got shape {x.shape}")
    return x.astype(np.float32)


def _labels(y, n) -> np.ndarray:
    y = y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else np.asarray(y)
    if y.shape != (n,):
        raise ValueError(f"labels: expected shape ({n},) to match x, got {y.shape}")
    return y.astype(np.int64)


def embed_tsne(x, seed: int = 0, perplexity: float = 30.0, pca_dims: int | None = 50) -> np.ndarray:
    r"""A 2-D t-SNE embedding of the rows of ``x`` (scikit-learn), after PCA to ``pca_dims``.

    t-SNE places points so that neighbour probabilities
    :math:`p_{j|i} \propto \exp(-\lVert x_i - x_j\rVert^2 / 2\sigma_i^2)` match
    :math:`q_{ij} \propto (1 + \lVert z_i - z_j\rVert^2)^{-1}` in the plane (KL divergence).

    Args:
        x: samples (pixels, spike features, ...).
        seed: random state of PCA and t-SNE.
        perplexity: t-SNE perplexity (must be below the number of samples).
        pca_dims: reduce to this many principal components first (``None``: no PCA).

    Shape:
        - x: :math:`(N, D)`. Output: :math:`(N, 2)` float array.

    Example:
        >>> z = embed_tsne(torch.rand(40, 8), perplexity=5, pca_dims=None)
        >>> z.shape
        (40, 2)
    """
    from sklearn.manifold import TSNE

    xn = _matrix(x)
    if not 0 < perplexity < len(xn):
        raise ValueError(f"perplexity: expected a value in (0, {len(xn)}) (below the number of samples), got {perplexity}")
    if pca_dims is not None:
        check_positive_int(pca_dims, "pca_dims")
        if xn.shape[1] > pca_dims and len(xn) > pca_dims:
            from sklearn.decomposition import PCA

            xn = PCA(pca_dims, random_state=seed).fit_transform(xn)
    return TSNE(2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(xn)


def space_scores(x, labels, k: int = 5, folds: int = 5, seed: int = 0) -> dict:
    r"""How well a representation separates classes: cross-validated k-NN accuracy and silhouette.

    k-NN: mean accuracy over ``folds`` stratified folds of a ``k``-nearest-neighbour
    classifier (Euclidean; for 0/1 features that is :math:`\sqrt{\text{Hamming}}`).
    Silhouette: mean over samples of :math:`s_i = (b_i - a_i) / \max(a_i, b_i)`, with
    :math:`a_i` the mean distance to its own class and :math:`b_i` to the nearest other class
    (-1 .. 1, higher = tighter, better separated classes).

    Args:
        x: samples, one row each.
        labels: classes.
        k: neighbours.
        folds: cross-validation folds (at least 2).
        seed: shuffling of the folds.

    Shape:
        - x: :math:`(N, D)`; labels: :math:`(N,)`.

    Returns:
        ``{"dims": D, "knn_accuracy": %, "knn_std": %, "silhouette": float}``.

    Example:
        >>> x = torch.cat([torch.zeros(10, 3), torch.ones(10, 3)]) + 0.01 * torch.rand(20, 3)
        >>> s = space_scores(x, torch.tensor([0] * 10 + [1] * 10), k=3, folds=2)
        >>> s["knn_accuracy"], s["silhouette"] > 0.9
        (100.0, True)
    """
    from sklearn.metrics import silhouette_score
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.neighbors import KNeighborsClassifier

    xn = _matrix(x)
    y = _labels(labels, len(xn))
    check_positive_int(k, "k")
    check_positive_int(folds, "folds")
    if folds < 2:
        raise ValueError(f"folds: expected at least 2, got {folds}")
    if len(np.unique(y)) < 2:
        raise ValueError("labels: expected at least 2 classes")
    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    acc = cross_val_score(KNeighborsClassifier(k), xn, y, cv=cv)
    return {"dims": int(xn.shape[1]), "knn_accuracy": 100 * float(acc.mean()), "knn_std": 100 * float(acc.std()),
            "silhouette": float(silhouette_score(xn, y))}


PROBE_C_GRID = (0.001, 0.01, 0.1, 1.0, 10.0)
"""The ``C`` values :func:`linear_probe` chooses from (the same grid for every space)."""


def linear_probe(x, labels, grid=PROBE_C_GRID, val_fraction: float = 0.2, test_fraction: float = 0.2,
                 seed: int = 0) -> dict:
    r"""Test accuracy of a linear SVM whose ``C`` is chosen on a validation split, never on the test split.

    The samples are shuffled (``seed``) and split into train / validation / test; for each
    ``C`` of ``grid`` a ``LinearSVC(C)`` (scikit-learn, one-vs-rest, squared hinge, primal
    solver) is fitted on the training part and scored on the validation part; the best ``C`` (the smallest on ties)
    is refitted on training + validation and scored once on the test part:
    :math:`\mathrm{acc}_{test}(rg\max_C \mathrm{acc}_{val}(C))`.

    Args:
        x: samples, one row each (any real features: pixels, spikes, ...).
        labels: classes.
        grid: the ``C`` values to choose from.
        val_fraction, test_fraction: shares of the samples held out (each in (0, 1), sum < 1).
        seed: the shuffle.

    Shape:
        - x: :math:`(N, D)`; labels: :math:`(N,)`.

    Returns:
        ``{"accuracy": % on the test part, "c": the chosen C, "validation": {C: %}}``.

    Example:
        >>> x = torch.cat([torch.zeros(20, 3), torch.ones(20, 3)]) + 0.1 * torch.rand(40, 3)
        >>> r = linear_probe(x, torch.tensor([0] * 20 + [1] * 20), grid=(1.0,))
        >>> r["accuracy"], r["c"]
        (100.0, 1.0)
    """
    from sklearn.svm import LinearSVC

    xn = _matrix(x)
    y = _labels(labels, len(xn))
    if not (0 < val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ValueError(f"val_fraction, test_fraction: expected shares in (0, 1) with a sum below 1, "
                         f"got {val_fraction}, {test_fraction}")
    grid = [float(c) for c in grid]
    if not grid or min(grid) <= 0:
        raise ValueError(f"grid: expected positive C values, got {grid}")
    order = np.random.default_rng(seed).permutation(len(xn))
    n_test, n_val = round(test_fraction * len(xn)), round(val_fraction * len(xn))
    te, va, tr = order[:n_test], order[n_test:n_test + n_val], order[n_test + n_val:]
    if min(len(te), len(va), len(tr)) == 0 or len(np.unique(y[tr])) < 2:
        raise ValueError(f"x: {len(xn)} samples are too few to split into train, validation and test")

    def fit(c, rows):
        # the primal (trust-region Newton) solver: on a few thousand dense, non-separable rows
        # the dual coordinate descent can run to its iteration cap for minutes per C
        return LinearSVC(C=c, dual=False, max_iter=1000).fit(xn[rows], y[rows])

    validation = {c: 100 * float(fit(c, tr).score(xn[va], y[va])) for c in grid}
    best = max(grid, key=lambda c: (validation[c], -c))
    acc = 100 * float(fit(best, np.concatenate([tr, va])).score(xn[te], y[te]))
    return {"accuracy": acc, "c": best, "validation": validation}


def compare_spaces(spaces: dict, labels, n: int, seeds=(0, 1, 2), k: int = 5, folds: int = 5,
                   probe_grid=PROBE_C_GRID) -> list:
    r"""5-NN accuracy, silhouette and a linear probe of several spaces, over random draws of samples.

    For each seed, ``n`` samples are drawn at random (the same rows in every space) and scored
    by :func:`space_scores` (k-NN with ``folds``-fold cross-validation, silhouette) and
    :func:`linear_probe` (``C`` chosen on validation per space and draw); each row gives the
    mean and the standard deviation over the seeds, :math:`ar s \pm \mathrm{sd}(s)`.

    Args:
        spaces: ``{name: (N, D) features}`` of the same ``N`` samples.
        labels: ``(N,)`` classes.
        n: samples per draw (``<= N``).
        seeds: one draw per seed.
        k, folds: as in :func:`space_scores`.
        probe_grid: the probe's ``C`` grid.

    Shape:
        - each space: :math:`(N, D)`; labels: :math:`(N,)`.

    Returns:
        One dict per space: ``space, dims, knn, knn_sd, silhouette, silhouette_sd, probe,
        probe_sd, probe_c`` (accuracies in %, ``probe_c`` the chosen ``C`` of each draw).

    Example:
        >>> x = torch.cat([torch.zeros(20, 3), torch.ones(20, 3)]) + 0.1 * torch.rand(40, 3)
        >>> y = torch.tensor([0] * 20 + [1] * 20)
        >>> rows = compare_spaces({"a": x, "noise": torch.rand(40, 3)}, y, 30, seeds=(0, 1), k=3, folds=2)
        >>> [r["space"] for r in rows], rows[0]["knn"], rows[0]["knn"] > rows[1]["knn"]
        (['a', 'noise'], 100.0, True)
    """
    if not isinstance(spaces, dict) or not spaces:
        raise TypeError("spaces: expected a non-empty dict {name: (N, D) features}")
    mats = {name: _matrix(x, f"spaces[{name!r}]") for name, x in spaces.items()}
    total = {len(m) for m in mats.values()}
    if len(total) != 1:
        raise ValueError(f"spaces: every space needs the same samples, got row counts {sorted(total)}")
    total = total.pop()
    y = _labels(labels, total)
    check_positive_int(n, "n")
    if n > total:
        raise ValueError(f"n: expected at most {total} (the number of samples), got {n}")
    seeds = list(seeds)
    if not seeds:
        raise ValueError("seeds: expected at least one seed")
    per = {name: [] for name in mats}
    for seed in seeds:
        rows = np.random.default_rng(seed).choice(total, n, replace=False)
        for name, m in mats.items():
            s = space_scores(m[rows], y[rows], k, folds, seed)
            p = linear_probe(m[rows], y[rows], probe_grid, seed=seed)
            per[name].append((s["knn_accuracy"], s["silhouette"], p["accuracy"], p["c"]))
    out = []
    for name, vals in per.items():
        arr = np.array([v[:3] for v in vals], dtype=float)
        sd = arr.std(0, ddof=1) if len(vals) > 1 else np.zeros(3)
        out.append({"space": name, "dims": int(mats[name].shape[1]), "knn": float(arr[:, 0].mean()),
                    "knn_sd": float(sd[0]), "silhouette": float(arr[:, 1].mean()), "silhouette_sd": float(sd[1]),
                    "probe": float(arr[:, 2].mean()), "probe_sd": float(sd[2]), "probe_c": [v[3] for v in vals]})
    return out


# --- stored runs ----------------------------------------------------------------------------
#: keys of a results.json that say where its numbers come from, in display order
PROVENANCE_KEYS = ("command", "date", "commit", "clean_tree", "device", "device_name", "threads", "torch", "snnlab", "seed")


#: results.json names of kulkarni2018 runs made before they went through snnlab.runs.Run -> today's
_KULKARNI_RENAMED = {"best_test_acc": "best_test_accuracy", "final_test_acc": "final_test_accuracy",
                     "paper_test_acc": "paper_accuracy", "cnn_train_acc": "cnn_train_accuracy", "epochs": "history",
                     "torch_version": "torch", "python_version": "python"}
_KULKARNI_PHASES = {"cnn_s": "CNN kernels", "hidden_train_s": "hidden train", "hidden_test_s": "hidden test",
                    "train_s": "NormAD", "eval_s": "evaluation"}  # total_s: their sum, not a phase


def read_results(folder):
    r"""The ``results.json`` of a run folder as a dict, or ``None`` when the folder has none.

    Results stored under earlier names (Kulkarni & Rajendran runs before they went through
    :class:`snnlab.runs.Run`: ``best_test_acc``, ``epochs``, ``timings``, ...) also get today's
    (``best_test_accuracy``, ``history``, ``wall_time_per_phase_s``, ...); the file is not changed.

    Args:
        folder: a run folder (e.g. ``results/kheradpisheh2018_quick``).

    Raises:
        snnlab.integrity.IntegrityError: the file does not match the SHA-256 recorded beside it.
        ValueError: the file exists but is not a JSON object.

    Example:
        >>> import tempfile
        >>> read_results(tempfile.mkdtemp()) is None
        True
    """
    import json
    from pathlib import Path

    from .integrity import IntegrityError, verify

    path = Path(folder) / "results.json"
    if not path.is_file():
        return None
    try:
        verify(path)
    except IntegrityError as err:
        raise IntegrityError(f"folder: {err}") from None
    try:
        out = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"folder: {path} is not readable JSON ({err})") from None
    if not isinstance(out, dict):
        raise ValueError(f"folder: {path} holds a {type(out).__name__}, expected a JSON object")
    if out.get("model") == "kulkarni2018":
        for old, new in _KULKARNI_RENAMED.items():
            if old in out:
                out.setdefault(new, out[old])
        if isinstance(out.get("timings"), dict):
            out.setdefault("wall_time_per_phase_s", {new: out["timings"][old] for old, new in _KULKARNI_PHASES.items()
                                                     if old in out["timings"]})
    return out


def _readme_row(folder) -> dict:
    """The row of ``folder``'s entry in the Markdown table of ``folder/../README.md`` ({} if none)."""
    from pathlib import Path

    folder = Path(folder)
    readme = folder.parent / "README.md"
    if not readme.is_file():
        return {}
    header = None
    for line in readme.read_text().splitlines():
        if not line.lstrip().startswith("|"):
            header = None
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if header is None:
            header = [c.lower() for c in cells]
        elif all(set(c) <= set("-: ") for c in cells):
            continue
        elif cells and f"{folder.name}/" in cells[0].strip("`") + "/":
            return {h: c.replace("`", "") for h, c in zip(header[1:], cells[1:]) if c}
    return {}


def provenance(results: dict, folder=None) -> dict:
    r"""Where a run's numbers come from: command, date, commit and clean tree, device, ...
    (``"not recorded"`` for missing keys), plus the config's name and the total wall time
    :math:`\sum_p t_p` of its phases.

    Keys come from ``results``; with ``folder``, the row for that folder in the Markdown table
    of ``folder/../README.md`` (columns such as command, device, date, commit) fills the keys
    ``results`` lacks, and where both have a key with different values the README's is added
    as ``"<key> (README)"``.

    Args:
        results: a results dict (from ``reproduce`` or :func:`read_results`).
        folder: the run folder, to look up its README entry.

    Example:
        >>> p = provenance({"device": "cpu", "config": {"name": "quick"}, "wall_time_per_phase_s": {"a": 1, "b": 2}})
        >>> p["device"], p["commit"], p["config"], p["wall_time_s"]
        ('cpu', 'not recorded', 'quick', 3.0)
    """
    if not isinstance(results, dict):
        raise TypeError(f"results: expected a dict, got {type(results).__name__}")
    out = {k: results.get(k, "not recorded") for k in PROVENANCE_KEYS}
    if "date" not in results and "finished" in results:  # how runs since 2026-12-05 date their results
        out["date"] = results["finished"]
    cfg = results.get("config")
    out["config"] = cfg.get("name", "not recorded") if isinstance(cfg, dict) else "not recorded"
    phases = results.get("wall_time_per_phase_s")
    out["wall_time_s"] = float(sum(phases.values())) if isinstance(phases, dict) and phases else "not recorded"
    if folder is not None:
        for key, value in _readme_row(folder).items():
            if out.get(key, "not recorded") == "not recorded":
                out[key] = value
            elif str(out[key]) != value:
                out[f"{key} (README)"] = value
    return out


def run_info(repo=None) -> dict:
    r"""Provenance of the current execution: date, git commit, torch version and CPU threads.

    ``commit`` is the short hash of ``HEAD`` in ``repo``, with ``+dirty`` when tracked files
    differ from it, or ``"unknown"`` outside a git checkout (or without git).

    Args:
        repo: a folder inside the checkout (default: the current directory).

    Example:
        >>> sorted(run_info())
        ['commit', 'date', 'threads', 'torch']
    """
    from .runs import git_state

    commit, clean = git_state("." if repo is None else repo)
    if clean is False:
        commit += "+dirty"
    return {"date": time.strftime("%Y-%m-%d %H:%M %Z"), "commit": commit, "torch": torch.__version__,
            "threads": torch.get_num_threads()}


# --- timing, profiling, tables --------------------------------------------------------------
def throughput(fn, n: int, repeats: int = 3, warmup: bool = True) -> float:
    r"""Samples per second of ``fn()`` processing ``n`` samples: :math:`n / \mathrm{median}(t)`.

    Args:
        fn: callable without arguments.
        n: samples that one call processes.
        repeats: timed calls (the median is used).
        warmup: make one untimed call first.

    Example:
        >>> throughput(lambda: sum(range(1000)), n=1000, repeats=2) > 0
        True
    """
    if not callable(fn):
        raise TypeError(f"fn: expected a callable, got {type(fn).__name__}")
    check_positive_int(n, "n")
    check_positive_int(repeats, "repeats")
    if warmup:
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return n / max(statistics.median(times), 1e-12)


def profile_calls(fn, top: int = 12, sort: str = "tottime") -> list:
    r"""Profile ``fn()`` with :mod:`cProfile`: the ``top`` functions by own time (or cumulative).

    Args:
        fn: callable without arguments.
        top: rows to keep.
        sort: ``"tottime"`` (time inside the function itself) or ``"cumtime"`` (with callees).

    Returns:
        Rows ``{"function", "calls", "tottime_s", "cumtime_s", "share"}``: ``function`` is
        ``name (file:line)`` (built-ins: their name only) and ``share`` the fraction of the total
        run time spent inside the function itself (``tottime / total``).

    Example:
        >>> rows = profile_calls(lambda: sorted(range(10000), key=lambda v: -v), top=3)
        >>> len(rows) <= 3 and all(r["calls"] >= 1 for r in rows)
        True
    """
    import cProfile
    import os
    import pstats

    if not callable(fn):
        raise TypeError(f"fn: expected a callable, got {type(fn).__name__}")
    check_positive_int(top, "top")
    if sort not in ("tottime", "cumtime"):
        raise ValueError(f"sort: expected 'tottime' or 'cumtime', got {sort!r}")
    prof = cProfile.Profile()
    prof.enable()
    try:
        fn()
    finally:
        prof.disable()
    stats = pstats.Stats(prof).stats
    total = sum(v[2] for v in stats.values()) or 1e-12
    rows = []
    for (path, line, name), (cc, nc, tt, ct, _) in stats.items():
        label = name if path == "~" else f"{name} ({os.path.basename(path)}:{line})"
        rows.append({"function": label, "calls": int(nc), "tottime_s": float(tt),
                     "cumtime_s": float(ct), "share": float(tt / total)})
    key = "tottime_s" if sort == "tottime" else "cumtime_s"
    return sorted(rows, key=lambda r: -r[key])[:top]


def markdown_table(rows, columns=None, floatfmt: str = "{:.2f}") -> str:
    r"""Rows of dicts as a Markdown table (display with ``IPython.display.Markdown``).

    Args:
        rows: list of dicts.
        columns: keys to show, in order (default: the first row's keys); a ``(key, title)``
            pair shows ``title`` in the header.
        floatfmt: format of float values.

    Example:
        >>> print(markdown_table([{"T": 10, "acc": 91.234}], floatfmt="{:.1f}"))
        | T | acc |
        | --- | --- |
        | 10 | 91.2 |
    """
    rows = list(rows)
    if not rows:
        raise ValueError("rows: expected at least one row")
    if not all(isinstance(r, dict) for r in rows):
        raise TypeError("rows: expected a list of dicts")
    cols = list(rows[0]) if columns is None else list(columns)
    keys = [c[0] if isinstance(c, tuple) else c for c in cols]
    titles = [c[1] if isinstance(c, tuple) else c for c in cols]

    def cell(v):
        if isinstance(v, float) and not math.isnan(v):
            return floatfmt.format(v)
        return "" if v is None else str(v)

    lines = ["| " + " | ".join(titles) + " |", "| " + " | ".join("---" for _ in keys) + " |"]
    lines += ["| " + " | ".join(cell(r.get(k)) for k in keys) + " |" for r in rows]
    return "\n".join(lines)
