"""Kheradpisheh et al. 2018: STDP-learned convolutional spiking features + a linear SVM.

Architecture (MNIST, 28x28): 2 DoG channels -> pad 2 -> conv1 (32 @ 5x5, threshold 10)
-> pool 2/2 pad 1 -> pad 1 -> conv2 (150 @ 2x2, threshold 1) -> pool 2/2 pad 1; the
features are whether each pooled conv2 neuron spiked at all (150 x 9 x 9 = 12,150 bits),
classified by a linear SVM (:class:`snnlab.svm.LinearSVM`; the paper's ``C = 2.4``, or, by default,
``C`` chosen on held-out training features: see :func:`snnlab.svm.select_svm_c`).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from functools import partial

import torch
import torch.nn as nn

from .. import default_device
from .._batching import batch_for, batched_map
from .._checks import field_bool, field_choice, field_int, field_number, field_values
from ..metrics import confusion_matrix
from ..coding import Encoder, times_to_wave
from ..competition import inhibit_times
from ..data import encoded_folder, encoded_mnist
from ..layers import SpikingConv, block_pool, fire, pool_times, pooling
from ..learners import STDP
from ..runs import PhaseTimer, Run
from ..svm import SVM_C_GRID, LinearSVM, select_svm_c
from ._protocol import stdp_stage

__all__ = ["Kheradpisheh2018Config", "Kheradpisheh2018", "LinearSVM", "fit_svm", "train_layers", "classify",
           "select_svm_c", "SVM_C_GRID", "reproduce", "PAPER_ACCURACY"]

PAPER_ACCURACY = 98.4


@dataclass
class Kheradpisheh2018Config:
    """Hyper-parameters of the network and protocol; defaults are the published ones.

    ``rate_doubling`` says which layers use the 500-sample rate doubling: both, as the
    protocol trains layer by layer, each with the same schedule. The reference script doubles conv1's
    rates only (it never advances conv2's counter); ``rate_doubling=(True, False)``
    reproduces that (conv2 then learns at a+ = 0.004 throughout, 37x below 0.15). ``chunk`` is
    the exact STDP trainer's batch of samples (:func:`snnlab.training.train_stdp`; ``None``:
    per device); it does not change the result. ``stdp_mode="batched"`` trains conv1/conv2 by
    mini-batches of ``stdp_batch`` samples (winners found with the batch-start weights,
    updates summed); ``"exact"`` (published) is sample by sample.

    The classifier: ``svm_c=None`` (default) picks ``C`` from ``svm_c_grid`` by the accuracy
    on the last ``svm_val_fraction`` of the SVM's training features (held out, never the
    test set), walking the grid up from the smallest ``C`` until the accuracy has fallen
    ``svm_patience`` times in a row (``None``: the whole grid), then refits on all of them; a
    number fixes ``C`` (the paper: 2.4). These fields may change when a finished run is
    resumed: they do not touch STDP.

    The data: ``data="mnist"`` (default), or ``"folder:PATH"``, a folder of labelled images
    ``PATH/<class>/<image>`` of any size (:func:`snnlab.data.encoded_folder`: the last
    ``test_fraction`` of each class, in the order of the files' SHA-256, is the test set),
    resized to ``image_size`` (``[height, width]``; ``None``: the images must share a size).
    The sample counts then cap at the folder's: ``train_samples``, ``svm_train_samples`` and
    ``test_samples`` take at most the images there are.
    """

    #: fields a resumed run may change (the classifier only)
    RESUME_FREE = ("svm_c", "svm_c_grid", "svm_val_fraction", "svm_patience")

    time_steps: int = 15
    features: tuple = (32, 150)
    kernels: tuple = (5, 2)
    thresholds: tuple = (10.0, 1.0)
    k: tuple = (5, 8)
    radius: tuple = (2, 1)
    stdp_rates: tuple = (0.004, -0.003)
    max_a_plus: float = 0.15
    doubling_every: int = 500
    doubling_ratio: float = -0.75
    rate_doubling: tuple = (True, True)
    weight_mean: float = 0.8
    weight_std: float = 0.05
    epochs: tuple = (2, 20)
    train_samples: tuple = (60000, 60000)
    svm_train_samples: int = 60000
    test_samples: int = 10000
    svm_c: float | None = None
    svm_c_grid: tuple = SVM_C_GRID
    svm_val_fraction: float = 1 / 6
    svm_patience: int | None = 2
    chunk: int | None = None
    stdp_mode: str = "exact"
    stdp_batch: int = 16
    data: str = "mnist"
    image_size: tuple | None = None
    test_fraction: float = 0.25
    name: str = field(default="full", compare=False)

    def __post_init__(self):
        # every field's type and range, so that bad values fail here, before any work
        count = partial(field_int, lo=1)
        if not isinstance(self.data, str) or not (self.data == "mnist" or self.data.startswith("folder:")
                                                  and len(self.data) > len("folder:")):
            raise ValueError(f"data: expected 'mnist' or 'folder:PATH' (a folder PATH/<class>/<image>), got {self.data!r}")
        if self.image_size is not None:
            self.image_size = field_values(self.image_size, "image_size", 2, count)
        v = self.test_fraction
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v < 1:
            raise ValueError(f"test_fraction: expected a number in (0, 1), got {v!r}")
        field_int(self.time_steps, "time_steps", 1, 255)
        self.features = field_values(self.features, "features", 2, count)
        self.kernels = field_values(self.kernels, "kernels", 2, count)
        self.thresholds = field_values(self.thresholds, "thresholds", 2, partial(field_number, lo=0))
        self.k = field_values(self.k, "k", 2, count)
        self.radius = field_values(self.radius, "radius", 2, partial(field_int, lo=0))
        self.stdp_rates = field_values(self.stdp_rates, "stdp_rates", 2, field_number)
        field_number(self.max_a_plus, "max_a_plus", 0, above=True)
        field_int(self.doubling_every, "doubling_every", 1)
        field_number(self.doubling_ratio, "doubling_ratio")
        self.rate_doubling = field_values(self.rate_doubling, "rate_doubling", 2, field_bool)
        field_number(self.weight_mean, "weight_mean")
        field_number(self.weight_std, "weight_std", 0)
        if not isinstance(self.epochs, (list, tuple)) or len(self.epochs) != 2 \
                or any(isinstance(e, bool) or not isinstance(e, int) or e < 0 for e in self.epochs):
            raise ValueError(f"epochs: expected 2 non-negative ints (conv1, conv2), got {self.epochs}")
        self.epochs = tuple(self.epochs)
        if not isinstance(self.train_samples, (list, tuple)) or len(self.train_samples) != 2 \
                or any(isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 60000 for n in self.train_samples):
            raise ValueError(f"train_samples: expected 2 ints in 1..60000, got {self.train_samples}")
        self.train_samples = tuple(self.train_samples)
        field_choice(self.stdp_mode, "stdp_mode", ("exact", "batched"))
        field_int(self.stdp_batch, "stdp_batch", 1)
        if self.chunk is not None:
            field_int(self.chunk, "chunk", 1)
        if not isinstance(self.svm_c_grid, (list, tuple)) or not self.svm_c_grid or not all(
                not isinstance(c, bool) and isinstance(c, (int, float)) and 0 < c < math.inf for c in self.svm_c_grid):
            raise ValueError(f"svm_c_grid: expected a list of positive numbers, got {self.svm_c_grid!r}")
        self.svm_c_grid = tuple(float(c) for c in self.svm_c_grid)
        if self.svm_c is not None and (isinstance(self.svm_c, bool) or not isinstance(self.svm_c, (int, float))
                                       or not 0 < self.svm_c < math.inf):
            raise ValueError(f"svm_c: expected a positive number or None (chosen by validation), got {self.svm_c!r}")
        v = self.svm_val_fraction
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v < 1:
            raise ValueError(f"svm_val_fraction: expected a number in (0, 1), got {v!r}")
        p = self.svm_patience
        if p is not None and (isinstance(p, bool) or not isinstance(p, int) or p < 1):
            raise ValueError(f"svm_patience: expected a positive int or None (the whole grid), got {p!r}")
        field_int(self.svm_train_samples, "svm_train_samples", 1, 60000)
        field_int(self.test_samples, "test_samples", 1, 10000)
        if not isinstance(self.name, str):
            raise ValueError(f"name: expected a text, got {self.name!r}")
        # the layers' sizes on 28x28 digits: conv1 on 32 (padded by 2), pool 2/2 with padding 1,
        # pad 1, conv2
        k1, k2 = self.kernels
        side1 = (33 - k1) // 2 + 1
        if self.data == "mnist" and (k1 > 32 or side1 + 3 - k2 < 1):
            most = "conv1's kernel may be at most 32 wide" if k1 > 32 else f"conv2's kernel may be at most {side1 + 2} wide"
            raise ValueError(f"kernels: {list(self.kernels)} do not fit 28x28 digits ({most}); the published ones are [5, 2]")

    @classmethod
    def quick(cls, **overrides) -> "Kheradpisheh2018Config":
        """A CPU-sized preset: the published network and rules on fewer samples."""
        base = dict(epochs=(1, 1), train_samples=(3000, 6000),
                    svm_train_samples=30000, name="quick")
        base.update(overrides)
        return cls(**base)

    @classmethod
    def from_dict(cls, d: dict) -> "Kheradpisheh2018Config":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


class Kheradpisheh2018(nn.Module):
    r"""The feature extractor; weights drawn from :math:`\mathcal N(0.8, 0.05^2)` in layer order.

    Args:
        config: :class:`Kheradpisheh2018Config`.
        seed: seed of the initial weights (0..2**32 - 1).

    Shape:
        - Input: spike times :math:`(B, 2, 28, 28)` uint8, as from
          :meth:`snnlab.coding.Encoder.kheradpisheh2018`.
        - Output of :meth:`forward`: binary features :math:`(B, 12150)` uint8.

    Example:
        >>> net = Kheradpisheh2018(seed=1)
        >>> net(torch.full((2, 2, 28, 28), 15, dtype=torch.uint8)).shape
        torch.Size([2, 12150])
    """

    def __init__(self, config: Kheradpisheh2018Config | None = None, seed: int | None = None):
        super().__init__()
        self.config = cfg = config or Kheradpisheh2018Config()
        if seed is not None:
            field_int(seed, "seed", 0, 2 ** 32 - 1)
        g = torch.Generator().manual_seed(seed) if seed is not None else None
        (f1, f2), (k1, k2) = cfg.features, cfg.kernels
        t, init = cfg.time_steps, dict(weight_mean=cfg.weight_mean, weight_std=cfg.weight_std, generator=g)
        # the reference pads conv1's input by 2 and conv2's (after pooling) by 1
        self.conv1 = SpikingConv(2, f1, k1, cfg.thresholds[0], cfg.k[0], cfg.radius[0], padding=2, time_steps=t, **init)
        self.conv2 = SpikingConv(f1, f2, k2, cfg.thresholds[1], cfg.k[1], cfg.radius[1], padding=1, time_steps=t, **init)

    def conv2_input(self, times: torch.Tensor, batch_size: int = 256, progress: bool = False) -> torch.Tensor:
        """Training input of conv2: pooled conv1 spikes with point-wise inhibition, as spike
        times ``(B, 32, 15, 15)`` uint8, before conv2's padding."""
        out = pool_times(self.conv1.times(times, batch_size, progress), 2, 2, 1)
        return inhibit_times(out, self.config.time_steps)

    @torch.no_grad()
    def forward(self, times: torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
        """Binary features ``(B, 12150)`` (final-slice inference, no inhibition)."""
        cfg = self.config
        dev = self.conv1.weight.device

        def batch(a, b):  # a batch too large for memory is split by batched_map
            x = block_pool(self.conv1.final(times[a:b].to(dev) < cfg.time_steps), 2, 1)
            return block_pool(self.conv2.final(x), 2, 1).flatten(1).to(torch.uint8).cpu()

        out = batched_map(batch, len(times), batch_for(dev, batch_size, 128))
        return torch.cat(out) if out else torch.empty(0, 0, dtype=torch.uint8)

    @torch.no_grad()
    def forward_full(self, times: torch.Tensor) -> torch.Tensor:
        """The straightforward computation over all time steps (as the reference does it)."""
        cfg = self.config
        spk, _ = fire(self.conv1(times_to_wave(times, cfg.time_steps)), cfg.thresholds[0])
        spk, _ = fire(self.conv2(pooling(spk, 2, 2, 1)), cfg.thresholds[1])
        return pooling(spk, 2, 2, 1).amax(1).flatten(1).to(torch.uint8)


def fit_svm(train_x, train_y, c: float = 2.4) -> LinearSVM:
    """``LinearSVC(C=c)`` on binary spike features (:class:`LinearSVM`)."""
    return LinearSVM(c).fit(train_x, train_y)


def train_layers(net: Kheradpisheh2018, train_times: torch.Tensor, state: dict, timer: PhaseTimer,
                 save=lambda: None, progress: bool = False, log=print) -> None:
    """STDP on conv1, then conv2, for the epochs ``state["done"]`` says are left (in place).

    Args:
        net: the network; its config gives samples, epochs, rates and rate doubling.
        train_times: encoded training images (spike times).
        state: ``{"done": [e1, e2], "sched": [..], "stdp_history": [..]}``, updated.
        timer: records ``convN input`` and ``convN STDP`` times.
        save: called after every epoch (checkpoint).

    Shape:
        - train_times: :math:`(N, 2, 28, 28)` uint8.
    """
    cfg = net.config
    for li, conv in enumerate((net.conv1, net.conv2)):
        if state["done"][li] >= cfg.epochs[li]:
            continue
        name = f"conv{li + 1}"
        n = cfg.train_samples[li]
        with timer(f"{name} input"):
            x = train_times[:n] if li == 0 else net.conv2_input(train_times[:n], progress=progress)
        with timer(f"{name} STDP"):
            stdp_stage(STDP(conv, cfg.stdp_rates), x, cfg, li, state, save, progress, log,
                       doubling=cfg.rate_doubling[li], name=name)


def classify(train_features, train_labels, test_features, test_labels, c: float | None = 2.4,
             tol: float = 1e-4, grid=SVM_C_GRID, val_fraction: float = 1 / 6, patience: int | None = 2,
             dual: bool = True, n_classes: int = 10) -> dict:
    r"""Linear SVM on spike features: accuracies :math:`100\,\#\{\hat y = y\}/N`, silent samples, confusion.

    Args:
        train_features, test_features: binary features.
        train_labels, test_labels: int labels.
        c, tol: the SVM's ``C`` and stopping tolerance (:class:`LinearSVM`); ``c=None``
            chooses ``C`` from ``grid`` with :func:`select_svm_c` (on the training samples
            only), then fits on all training samples.
        grid, val_fraction, patience: see :func:`snnlab.svm.select_svm_c` (used when ``c`` is None).
        dual: the solver (:class:`snnlab.svm.LinearSVM`; ``False``: scikit-learn's primal liblinear).
        n_classes: labels are ``0 .. n_classes - 1`` (the confusion matrix's size).

    Returns:
        ``{"train_accuracy", "test_accuracy", "test_silent", "feature_density", "confusion",
        "svm_c", "svm_validation"}`` (accuracies in %, confusion int64 ``(n_classes, n_classes)``,
        rows = true class; ``svm_validation``: ``{C: accuracy}``, empty when ``c`` was given),
        and ``"svm"``, the fitted :class:`LinearSVM`.

    Shape:
        - features: :math:`(N, D)`; labels: :math:`(N,)`.

    Example:
        >>> x = torch.tensor([[1, 0], [0, 1]], dtype=torch.uint8)
        >>> classify(x, torch.tensor([0, 1]), x, torch.tensor([0, 1]))["test_accuracy"]
        100.0
    """
    ytr, yte = torch.as_tensor(train_labels).long(), torch.as_tensor(test_labels).long()
    validation, warm = {}, None
    if c is None:  # the fit at the chosen C (on the first samples) starts the final one
        c, validation, warm = select_svm_c(train_features, ytr, grid, val_fraction, tol, patience, dual=dual,
                                           return_fit=True)
    clf = LinearSVM(c, tol=tol, dual=dual).fit(train_features, ytr, warm=warm)
    ptr, pte = clf.predict(train_features), clf.predict(test_features)
    confusion = confusion_matrix(yte, pte, n_classes)
    return {
        "train_accuracy": 100 * float((ptr == ytr).double().mean()),
        "test_accuracy": 100 * float((pte == yte).double().mean()),
        "test_silent": int((torch.as_tensor(test_features).sum(1) == 0).sum()),
        "feature_density": float(torch.as_tensor(test_features).float().mean()),
        "confusion": confusion,
        "svm_c": float(c),
        "svm_validation": validation,
        "svm": clf,
    }


def _dataset(enc: Encoder, cfg: Kheradpisheh2018Config, root, dev, progress: bool):
    # (train times, train labels, test times, test labels, class names) of cfg.data, as many
    # training samples as STDP and the SVM use
    n_train = max(max(cfg.train_samples), cfg.svm_train_samples)
    if cfg.data == "mnist":
        tr_times, tr_labels = encoded_mnist(enc, True, root, limit=n_train, device=dev, progress=progress)
        te_times, te_labels = encoded_mnist(enc, False, root, limit=cfg.test_samples, device=dev, progress=progress)
        return tr_times, tr_labels, te_times, te_labels, [str(d) for d in range(10)]
    d = encoded_folder(enc, cfg.data[len("folder:"):], cfg.image_size, cfg.test_fraction, root, device=dev,
                       progress=progress)
    n_test = cfg.test_samples
    return d.train_times[:n_train], d.train_labels[:n_train], d.test_times[:n_test], d.test_labels[:n_test], d.classes


def reproduce(config: Kheradpisheh2018Config | None = None, out_dir="runs/kheradpisheh2018", device="auto",
              seed: int = 1, resume: bool = False, progress: bool = True, root=None, log=print) -> dict:
    """Run the whole protocol: STDP on conv1 and conv2, features, linear SVM.

    Writes ``results.json``, ``curves.png``, ``weights.pt``, ``svm.pt`` (the SVM's
    :meth:`~snnlab.svm.LinearSVM.state_dict`, with its SHA-256 sidecar) and a checkpoint after every
    epoch of every layer (``resume=True`` continues from it with identical results).

    Args:
        config: protocol (default: the published one); see :meth:`Kheradpisheh2018Config.quick`.
        out_dir: output folder.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        seed: seed of the initial weights.
        resume: continue from the checkpoint in ``out_dir``.
        progress: progress bars.
        root: data root.
        log: where one-line messages go.

    Returns:
        The results dict (also in ``results.json``).
    """
    from ..integrity import save_torch
    from ..io import save_model

    cfg = config or Kheradpisheh2018Config()
    dev = default_device(device)
    run = Run(out_dir, resume)
    net = Kheradpisheh2018(cfg, seed=seed).to(dev)
    state = run.restore(net, cfg, seed, {"done": [0, 0], "sched": [None, None], "stdp_history": [], "seconds": {}}, log)
    timer = PhaseTimer(state["seconds"])
    t = cfg.time_steps

    save = run.saver(net, cfg, seed, state, timer)

    enc = Encoder.kheradpisheh2018(time_steps=t)
    with timer("encoding"):
        tr_times, tr_labels, te_times, te_labels, classes = _dataset(enc, cfg, root, dev, progress)

    train_layers(net, tr_times, state, timer, save, progress, log)
    with timer("features"):
        ftr = net(tr_times[:cfg.svm_train_samples])
        fte = net(te_times)
    with timer("svm"):
        scores = classify(ftr, tr_labels[:cfg.svm_train_samples], fte, te_labels, cfg.svm_c,
                          grid=cfg.svm_c_grid, val_fraction=cfg.svm_val_fraction, patience=cfg.svm_patience,
                          n_classes=len(classes))
    if scores["svm_validation"]:
        log("SVM C by validation on the last {:.0%} of the training features: ".format(cfg.svm_val_fraction)
            + ", ".join(f"{c:g}: {a:.2f}%" for c, a in scores["svm_validation"].items())
            + f" -> C = {scores['svm_c']:g}")
    svm = scores.pop("svm")
    log(f"SVM: train {scores['train_accuracy']:.2f}%  test {scores['test_accuracy']:.2f}%  "
        f"(silent test samples: {scores['test_silent']})")

    results = run.header("kheradpisheh2018", cfg, seed, dev, state)
    results.update({
        "history": state["stdp_history"],
        **scores,
        "best_test_accuracy": scores["test_accuracy"],
        "test_samples": len(te_labels),
        "svm_train_samples": len(ftr),
        "confusion": scores["confusion"].tolist(),
        "classes": classes,
        "paper_accuracy": PAPER_ACCURACY,
        "wall_time_per_phase_s": timer.seconds,
    })
    save_model(net, run.out / "weights.pt")
    save_torch(svm.state_dict(), run.out / "svm.pt")
    hist = state["stdp_history"]
    if hist:
        run.plot_curves(list(range(1, len(hist) + 1)),
                        {"mean w(1-w) (0 = converged)": [h["mean_w_1_minus_w"] for h in hist]},
                        "convergence", f"Kheradpisheh 2018 ({cfg.name}): test {scores['test_accuracy']:.2f}%")
    run.write_results(results)
    return results
