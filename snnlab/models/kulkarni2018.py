"""Kulkarni & Rajendran (2018): a three-layer LIF network for MNIST trained with NormAD.

Pipeline (units ms, mV, pA, nS, pF; ``dt = 0.1`` ms, ``T = 1000`` steps = 100 ms):

1. pixel ``k`` (0..255) -> constant current ``I = I0 + k Ip`` -> input LIF neuron -> regular
   spike train (a pixel of 0 sits below the 2.7 nA rheobase and never fires);
2. input spikes -> synaptic trace ``c(t) = sum_s exp(-(t-s)/tau) - exp(-(t-s)/tau_s)``
   (:func:`snnlab.neurons.synaptic_trace` with :attr:`Kulkarni2018Config.synapse`) ->
   12 fixed 3x3 kernels (from a one-epoch non-spiking CNN) applied at every step -> current
   into 12x26x26 = 8112 hidden LIF neurons (:attr:`Kulkarni2018Config.n_hidden`);
3. hidden spikes -> traces -> ``I = W c(t)`` into 10 output LIF neurons, which inhibit each
   other through their own traces; the class is the output with the most spikes;
4. ``W`` is trained with NormAD (:func:`snnlab.learning.normad_update`) towards one spike
   every 3.5 ms from 10 ms on for the correct output and silence for the others.

The *fast* variant (Dimovska's report) convolves the image once and drives each hidden neuron
with ``I(t) = a F exp(-t / tau1)``; since the current only decays, the simulation stops as soon
as it is below rheobase everywhere (no neuron can reach threshold after that).

Hidden spike trains do not depend on ``W``: :func:`reproduce` computes them once per image,
stores them as compact (neuron, step) event lists and reuses them every epoch. The output
layer and NormAD then run in compiled loops on the CPU (:mod:`._kulkarni_kernels`, numba),
~0.3-1 ms per image with the paper's per-image updates, so the whole 20-epoch protocol on 60k
images takes minutes; without numba the torch functions (:func:`output_layer` and NormAD's
reference definition) do the same work ~100x slower. A run's folder is a :class:`snnlab.runs.Run`,
like the other models'.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn.functional as F

from snnlab._checks import check_tensor
from . import _kulkarni_kernels as _kernels
from snnlab.neurons import LIFParams, SynapseParams, lif_rate, lif_simulate, lif_step, rheobase, synaptic_trace
from snnlab.learning import normad_kernel, normad_update
from snnlab.integrity import load_torch, save_torch
from snnlab.runs import PhaseTimer, Run

__all__ = [
    "PAPER_ACCURACY",
    "Kulkarni2018Config",
    "pixel_current",
    "input_spikes",
    "input_trace_table",
    "train_kernels",
    "expected_hidden_counts",
    "hidden_layer",
    "HiddenEvents",
    "compute_hidden_events",
    "output_layer",
    "target_steps",
    "predict",
    "evaluate",
    "reproduce",
]

#: Test accuracy reported by Kulkarni & Rajendran (2018), in percent.
PAPER_ACCURACY = 98.17

N_OUT = 10  # one output neuron per digit
VARIANTS = ("original", "fast")
CNN_ACTIVATIONS = ("relu", "lif")


@dataclass
class Kulkarni2018Config:
    """Constants and protocol of Kulkarni & Rajendran (2018); defaults are the published ones.

    Math: ``C dV/dt = -gL (V - EL) + I``; ``I_in = I0 + k Ip``; ``I_out = W c(t) + w_lat c_others(t)``.

    Args:
        C, gL, EL, VT, t_ref, dt: LIF constants (pF, nS, mV, mV, ms, ms).
        n_steps: simulated steps per image (1000 = 100 ms).
        method: ``"rk2"`` (authors) or ``"euler"``.
        I0, Ip: input current offset and per-grey-level increment (pA).
        n_kernels, kernel_size: hidden-layer kernels (12 of 3x3).
        cnn_samples, cnn_epochs, cnn_lr, cnn_batch: the non-spiking CNN that yields the kernels.
        cnn_activation: ``"relu"`` (the paper's plain CNN on ``x/255``) or ``"lif"`` (the CNN
            sees what the hidden layer sees: the mean input trace of each pixel, kernels scaled
            like the hidden layer's, and the analytic LIF rate as activation).
        hidden_scale: current (pA) per unit input trace at the largest kernel weight; not
            stated in the paper, calibrated so that hidden rates span the input-layer range.
        variant: ``"original"`` (spikes convolved at every step) or ``"fast"``.
        fast_tau, fast_scale: decay (ms) and gain (pA per unit feature) of the fast variant.
        tau, tau_s: synaptic kernel time constants (ms).
        lateral_pA: lateral inhibition between outputs, pA per unit trace (-1e-9 A in the
            authors' code; the paper says -1 nS).
        clamp_at_rest: hold every membrane potential at or above ``EL`` (the authors' code).
        target_start, target_period: desired spike train of the correct output (ms).
        normad_tau: time constant (ms) of the membrane filter in NormAD's ``d(t)`` (1 ms in the
            authors' code, not the 10 ms membrane constant).
        lr: NormAD step (pA per normalised update, 200 in the authors' code);
            ``lr_halve_every``: epochs between halvings of it, at most ``lr_halvings`` times
            (3 and 6: r, r/2, ..., r/64 over 20 epochs); batch_size: images per summed update
            (1, the paper's per-image updates; larger batches share the batch-start ``W``).
        epochs, n_train, n_test: protocol (20 epochs on 60k/10k).
        hidden_batch: images per batch when computing hidden spikes.

    Shape:
        - scalars only.

    Example:
        >>> cfg = Kulkarni2018Config()
        >>> cfg.n_steps, cfg.epochs, cfg.n_hidden, cfg.lr_at(19), Kulkarni2018Config.quick().variant
        (1000, 20, 8112, 3.125, 'original')
    """

    C: float = 300.0
    gL: float = 30.0
    EL: float = -70.0
    VT: float = 20.0
    t_ref: float = 3.0
    dt: float = 0.1
    n_steps: int = 1000
    method: str = "rk2"
    I0: float = 2700.0
    Ip: float = 101.2
    n_kernels: int = 12
    kernel_size: int = 3
    cnn_samples: int = 60000
    cnn_epochs: int = 1
    cnn_lr: float = 1e-3
    cnn_batch: int = 64
    cnn_activation: str = "relu"
    hidden_scale: float = 4000.0
    variant: str = "original"
    fast_tau: float = 5.0
    fast_scale: float = 60000.0
    tau: float = 5.0
    tau_s: float = 1.25
    lateral_pA: float = -1000.0
    clamp_at_rest: bool = True
    target_start: float = 10.0
    target_period: float = 3.5
    normad_tau: float = 1.0
    lr: float = 200.0
    lr_halve_every: int = 3
    lr_halvings: int = 6
    batch_size: int = 1
    epochs: int = 20
    n_train: int = 60000
    n_test: int = 10000
    hidden_batch: int = 64

    def __post_init__(self):
        for f in fields(self):
            v = getattr(self, f.name)
            if f.type in ("float", float):
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                    raise TypeError(f"{f.name}: expected a finite number, got {v!r}")
            elif f.type in ("int", int):
                if isinstance(v, bool) or not isinstance(v, int):
                    raise TypeError(f"{f.name}: expected an int, got {v!r}")
                if v < 1:
                    raise ValueError(f"{f.name}: expected an int >= 1, got {v}")
        if not isinstance(self.clamp_at_rest, bool):
            raise TypeError(f"clamp_at_rest: expected a bool, got {self.clamp_at_rest!r}")
        if self.variant not in VARIANTS:
            raise ValueError(f"variant: expected one of {VARIANTS}, got {self.variant!r}")
        if self.cnn_activation not in CNN_ACTIVATIONS:
            raise ValueError(f"cnn_activation: expected one of {CNN_ACTIVATIONS}, got {self.cnn_activation!r}")
        if self.method not in ("euler", "rk2"):
            raise ValueError(f"method: expected 'euler' or 'rk2', got {self.method!r}")
        for name in ("tau", "tau_s", "fast_tau", "dt", "C", "gL", "lr", "normad_tau"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name}: expected a positive number, got {getattr(self, name)}")
        if (self.n_kernels, self.kernel_size) != (12, 3):
            raise ValueError(f"n_kernels, kernel_size: the hidden and output layers are built for 12 kernels of "
                             f"3x3 (12 x 26 x 26 hidden neurons), got {self.n_kernels} of {self.kernel_size}x{self.kernel_size}")
        if self.n_train > 60000 or self.n_test > 10000 or self.cnn_samples > 60000:
            raise ValueError(
                f"n_train/n_test/cnn_samples: MNIST has 60000/10000 images, got "
                f"{self.n_train}/{self.n_test}/{self.cnn_samples}")
        self.lif  # validates the neuron constants
        self.synapse  # and the synaptic ones (tau_s < tau)

    @classmethod
    def quick(cls, **overrides) -> "Kulkarni2018Config":
        """CPU/CI preset: 2000 train / 1000 test images, 6 epochs (step halved every 2), 6000 CNN images.

        Math: the published model and rule; only the data, the epochs and the step schedule shrink.

        Args:
            overrides: any field to change.

        Shape:
            - scalars only.

        Example:
            >>> Kulkarni2018Config.quick(epochs=2).epochs
            2
        """
        base = dict(n_train=2000, n_test=1000, epochs=6, lr_halve_every=2, cnn_samples=6000, hidden_batch=128)
        base.update(overrides)
        return cls(**base)

    @property
    def lif(self) -> LIFParams:
        """The :class:`~snnlab.neurons.LIFParams` of every layer."""
        return LIFParams(C=self.C, gL=self.gL, EL=self.EL, VT=self.VT, t_ref=self.t_ref, dt=self.dt,
                         v_min=self.EL if self.clamp_at_rest else None)

    @property
    def n_hidden(self) -> int:
        """Hidden neurons, ``n_kernels (28 - kernel_size + 1)**2`` on 28x28 MNIST (8112 as published)."""
        return self.n_kernels * (28 - self.kernel_size + 1) ** 2

    @property
    def synapse(self) -> SynapseParams:
        """The :class:`~snnlab.neurons.SynapseParams` of every synapse (input, hidden, output and lateral)."""
        return SynapseParams(tau=self.tau, tau_s=self.tau_s, dt=self.dt)

    @staticmethod
    def upgrade_checkpoint(checkpoint):
        """A checkpoint of this model in the current form (:class:`snnlab.runs.Run` asks)."""
        return _upgrade_checkpoint(checkpoint)

    def lr_at(self, epoch: int) -> float:
        """NormAD step of epoch ``epoch`` (0-based): ``lr / 2**min(epoch // lr_halve_every, lr_halvings)``."""
        return self.lr / 2 ** min(epoch // self.lr_halve_every, self.lr_halvings)


def _cfg(config):
    if config is None:
        return Kulkarni2018Config()
    if not isinstance(config, Kulkarni2018Config):
        raise TypeError(f"config: expected a Kulkarni2018Config or None, got {type(config).__name__}")
    return config


def _images(images, name="images"):
    check_tensor(images, name, (2, 3))
    if images.dim() == 2:
        images = images.unsqueeze(0)
    if images.shape[-2:] != (28, 28):
        raise ValueError(f"{name}: expected 28x28 images, got shape {tuple(images.shape)}")
    if images.dtype != torch.uint8:
        if images.is_floating_point() or images.dtype in (torch.int16, torch.int32, torch.int64):
            if bool(((images < 0) | (images > 255) | (images != images.round())).any()):
                raise ValueError(f"{name}: expected integer grey levels 0..255, got values outside")
            images = images.to(torch.uint8)
        else:
            raise TypeError(f"{name}: expected uint8 grey levels, got dtype {images.dtype}")
    return images


def pixel_current(images: torch.Tensor, config: Kulkarni2018Config | None = None) -> torch.Tensor:
    """Constant input current of every pixel, in pA.

    Math: ``I = I0 + k Ip`` for grey level ``k`` in 0..255.

    Args:
        images: grey levels (uint8, or integer-valued).
        config: constants (default :class:`Kulkarni2018Config`).

    Shape:
        - images: :math:`(B, 28, 28)` or :math:`(28, 28)`; output: :math:`(B, 784)` float32.

    Example:
        >>> pixel_current(torch.tensor([[0, 255] * 392], dtype=torch.uint8).view(28, 28))[0, :2].tolist()
        [2700.0, 28506.0]
    """
    cfg = _cfg(config)
    x = _images(images)
    return cfg.I0 + x.reshape(x.shape[0], -1).float() * cfg.Ip


def input_spikes(images: torch.Tensor, config: Kulkarni2018Config | None = None) -> torch.Tensor:
    """Spike trains of the 784 input neurons.

    Math: LIF driven by ``I0 + k Ip`` for ``n_steps`` steps.

    Args:
        images: grey levels 0..255.
        config: constants.

    Shape:
        - images: :math:`(B, 28, 28)`; output: :math:`(B, 784, T)` bool.

    Example:
        >>> s = input_spikes(torch.full((1, 28, 28), 255, dtype=torch.uint8))
        >>> int(s[0, 0].sum())
        25
    """
    cfg = _cfg(config)
    return lif_simulate(pixel_current(images, cfg), cfg.n_steps, cfg.lif, cfg.method)


def input_trace_table(config: Kulkarni2018Config | None = None, device=None) -> torch.Tensor:
    """Synaptic trace of an input neuron for every grey level (the input layer is deterministic).

    Math: ``table[k, t] = c(t)`` of the LIF spike train driven by ``I0 + k Ip``.

    Args:
        config: constants.
        device: where to put the table.

    Shape:
        - output: :math:`(256, T)` float32.

    Example:
        >>> tab = input_trace_table()
        >>> tab.shape, float(tab[0].abs().max())
        (torch.Size([256, 1000]), 0.0)
    """
    cfg = _cfg(config)
    levels = torch.arange(256, dtype=torch.uint8).view(1, 16, 16).repeat(1, 1, 1)
    cur = cfg.I0 + levels.reshape(1, -1).float() * cfg.Ip
    s = lif_simulate(cur, cfg.n_steps, cfg.lif, cfg.method)[0]
    return synaptic_trace(s, cfg.synapse).to(device if device is not None else "cpu")


def expected_hidden_counts(inputs: torch.Tensor, kernels: torch.Tensor,
                           config: Kulkarni2018Config | None = None) -> torch.Tensor:
    """Spike counts of the hidden layer predicted from mean currents (no simulation; differentiable).

    Math: ``n_h = T dt rate_LIF(s_h (K/|K|max * c̄)(h))``, ``c̄(k)`` the mean input trace of grey level ``k``.

    The hidden current of the original variant fluctuates around this mean; the prediction
    follows the simulated counts closely (correlation ~0.99 on MNIST), which makes it the
    activation of the ``cnn_activation="lif"`` kernel CNN and a cheap probe of kernels.

    Args:
        inputs: grey levels (uint8 or integer-valued), or mean traces already looked up
            (float, one channel).
        kernels: the hidden kernels (normalised here to a largest magnitude of 1).
        config: constants (``hidden_scale``, LIF constants, ``n_steps``).

    Shape:
        - inputs: :math:`(B, 28, 28)` grey levels or :math:`(B, 1, 28, 28)` float traces;
          kernels: :math:`(12, 1, 3, 3)`; output: :math:`(B, 12, 26, 26)` float32.

    Example:
        >>> n = expected_hidden_counts(torch.full((1, 28, 28), 255, dtype=torch.uint8), torch.ones(12, 1, 3, 3))
        >>> n.shape, round(float(n.max()), 1)
        (torch.Size([1, 12, 26, 26]), 25.8)
    """
    cfg = _cfg(config)
    if inputs.is_floating_point():
        check_tensor(inputs, "inputs", 4)
        traces = inputs
    else:
        x = _images(inputs, "inputs")
        traces = input_trace_table(cfg, x.device).mean(1)[x.long()].unsqueeze(1)
    return (_mean_rate(traces, kernels, cfg) * (cfg.n_steps * cfg.dt / 1000.0)).float()


def _mean_rate(traces, kernels, cfg):
    # kernels normalised as in _norm_kernels, but differentiably; float64 rates in Hz
    return lif_rate(F.conv2d(traces, kernels / kernels.abs().max() * cfg.hidden_scale), cfg.lif)


class _KernelCNN(torch.nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.conv = torch.nn.Conv2d(1, cfg.n_kernels, cfg.kernel_size, bias=False)
        self.fc = torch.nn.Linear(cfg.n_hidden, N_OUT)

    def forward(self, x):
        if self.cfg.cnn_activation == "relu":
            return self.fc(F.relu(self.conv(x)).flatten(1))
        # x holds mean input traces and the kernels are scaled as in hidden_layer, so the
        # rheobase sits where it will sit in the spiking layer; rates in units of 100 Hz.
        return self.fc((_mean_rate(x, self.conv.weight, self.cfg).float() / 100.0).flatten(1))


def train_kernels(images: torch.Tensor, labels: torch.Tensor, config: Kulkarni2018Config | None = None,
                  seed: int = 0, device=None, progress: bool = False):
    """Train the small non-spiking CNN (conv 12x3x3, no bias -> ReLU -> linear) and return its kernels.

    Math: minimise cross-entropy of ``fc(relu(K * x))``, ``x = k/255`` (``cnn_activation="lif"``:
    ``fc(rate_LIF(s_h K/|K|max * c̄(k)))``, ``c̄`` the mean input trace) with Adam, ``cnn_epochs`` epochs.

    Args:
        images: training grey levels (uint8).
        labels: digits 0..9.
        config: constants (``cnn_lr``, ``cnn_batch``, ``cnn_epochs``, ``cnn_activation``).
        seed: seeds initialisation and shuffling.
        device: torch device.
        progress: show a tqdm bar.

    Returns:
        ``(kernels, train_accuracy)``: kernels as float32 on CPU, accuracy in percent on the
        training batches seen during the (last) epoch.

    Shape:
        - images: :math:`(N, 28, 28)`, labels: :math:`(N,)`; kernels: :math:`(12, 1, 3, 3)`.

    Example:
        >>> x = torch.randint(0, 256, (8, 28, 28), dtype=torch.uint8)
        >>> k, acc = train_kernels(x, torch.arange(8) % 10)
        >>> k.shape
        torch.Size([12, 1, 3, 3])
    """
    cfg = _cfg(config)
    x = _images(images)
    check_tensor(labels, "labels", 1)
    if labels.shape[0] != x.shape[0]:
        raise ValueError(f"labels: expected {x.shape[0]} labels (one per image), got {labels.shape[0]}")
    dev = torch.device(device) if device is not None else torch.device("cpu")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = _KernelCNN(cfg).to(dev)
    mean_trace = input_trace_table(cfg, dev).mean(1) if cfg.cnn_activation == "lif" else None
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.cnn_lr)
    correct = seen = 0
    for _ in range(cfg.cnn_epochs):
        perm = torch.randperm(x.shape[0], generator=gen)
        batches = range(0, x.shape[0], cfg.cnn_batch)
        if progress:
            from tqdm.auto import tqdm
            batches = tqdm(batches, desc="CNN kernels", leave=False)
        correct = seen = 0
        for i in batches:
            idx = perm[i:i + cfg.cnn_batch]
            xb = x[idx].to(dev)
            xb = (xb.float() / 255.0 if mean_trace is None else mean_trace[xb.long()]).unsqueeze(1)
            yb = labels[idx].to(dev)
            logits = net(xb)
            loss = F.cross_entropy(logits, yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            correct += int((logits.argmax(1) == yb).sum())
            seen += len(idx)
    return net.conv.weight.detach().float().cpu().clone(), 100.0 * correct / max(seen, 1)


def _norm_kernels(kernels):
    check_tensor(kernels, "kernels", 4, floating=True)
    if kernels.shape[1] != 1:
        raise ValueError(f"kernels: expected shape (K, 1, k, k), got {tuple(kernels.shape)}")
    m = kernels.abs().max()
    if not m > 0:
        raise ValueError("kernels: expected at least one non-zero weight, got all zeros")
    return kernels / m


def hidden_layer(images: torch.Tensor, kernels: torch.Tensor, config: Kulkarni2018Config | None = None,
                 variant: str | None = None, record: str = "spikes", device=None):
    """Spikes of the hidden layer (12 kernels x 26 x 26 LIF neurons) for a batch of images.

    Math: original ``I_h(t) = s_h (K/|K|max * c_in(t))``; fast ``I_h(t) = s_f (K/|K|max * x) exp(-t/tau1)``.

    Args:
        images: grey levels 0..255.
        kernels: the 3x3 kernels (normalised here to a largest magnitude of 1).
        config: constants; ``variant`` overrides ``config.variant``.
        variant: ``"original"`` or ``"fast"``.
        record: ``"spikes"`` -> bool ``(B, 8112, T)``; ``"counts"`` -> int ``(B, 8112)``;
            ``"events"`` -> ``(image, neuron, step)`` int64 index tensors (memory-light).
        device: where to simulate (default: the images' device).

    Shape:
        - images: :math:`(B, 28, 28)`; kernels: :math:`(12, 1, 3, 3)`
        - output: :math:`(B, 8112, T)`, :math:`(B, 8112)` or three :math:`(E,)` tensors;
          neuron index = kernel * 676 + row * 26 + col.

    Example:
        >>> k = torch.ones(12, 1, 3, 3)
        >>> c = hidden_layer(torch.zeros(2, 28, 28, dtype=torch.uint8), k, record="counts")
        >>> c.shape, int(c.sum())
        (torch.Size([2, 8112]), 0)
    """
    cfg = _cfg(config)
    variant = cfg.variant if variant is None else variant
    if variant not in VARIANTS:
        raise ValueError(f"variant: expected one of {VARIANTS}, got {variant!r}")
    if record not in ("spikes", "counts", "events"):
        raise ValueError(f"record: expected 'spikes', 'counts' or 'events', got {record!r}")
    x = _images(images)
    dev = torch.device(device) if device is not None else x.device
    x = x.to(dev)
    w = _norm_kernels(kernels).to(dev)
    B, T, p = x.shape[0], cfg.n_steps, cfg.lif
    side = 28 - w.shape[-1] + 1
    n = w.shape[0] * side * side
    rh = rheobase(p)
    if variant == "original":
        table = input_trace_table(cfg, dev)
        idx = x.long()
        ws = w * cfg.hidden_scale
        # Traces are >= 0, so positive weights times the largest trace of each pixel bound the
        # current from above; neurons whose bound stays below rheobase can never fire.
        bound = F.conv2d(table.max(1).values[idx].unsqueeze(1), ws.clamp(min=0)).flatten(1)
    else:
        feat = F.conv2d(x.float().unsqueeze(1) / 255.0, w).flatten(1) * cfg.fast_scale
        bound = feat
        decay = math.exp(-cfg.dt / cfg.fast_tau)
    # Simulate only the neurons that can fire (typically 15-25 % of them): same spikes, less work.
    live = (bound >= rh).flatten().nonzero().flatten()
    lb, ln = live // n, live % n
    m = live.numel()
    v = torch.full((m,), p.EL, device=dev)
    ref = torch.zeros((m,), dtype=torch.int32, device=dev)
    counts = torch.zeros((B * n,), dtype=torch.int32, device=dev)
    cnt_live = torch.zeros((m,), dtype=torch.int32, device=dev)
    spikes = torch.zeros((B * n, T), dtype=torch.bool, device=dev) if record == "spikes" else None
    ev = []
    if variant == "fast":
        feat_live = feat.flatten()[live]
        peak = float(feat_live.max()) if m else 0.0
    for t in range(T if m else 0):
        if variant == "original":
            cin = table[:, t][idx].unsqueeze(1)
            cur = F.conv2d(cin, ws).flatten()[live]
        else:
            amp = decay ** t
            if peak * amp < rh:
                # Current only decays from here: V can no longer reach VT, so no more spikes.
                break
            cur = feat_live * amp
        s, v, ref = lif_step(v, ref, cur, p, cfg.method)
        cnt_live += s
        if spikes is not None:
            spikes[live, t] = s
        elif record == "events":
            k = s.nonzero().flatten()
            if k.numel():
                ev.append((lb[k], ln[k], torch.full_like(k, t)))
    counts[live] = cnt_live
    counts = counts.view(B, n)
    if spikes is not None:
        spikes = spikes.view(B, n, T)
    if record == "spikes":
        return spikes
    if record == "counts":
        return counts
    if not ev:
        e = torch.zeros(0, dtype=torch.long, device=dev)
        return e, e.clone(), e.clone()
    return tuple(torch.cat(c) for c in zip(*ev))


@dataclass
class HiddenEvents:
    """Hidden-layer spikes of many images as compact event lists.

    Image ``i`` owns ``neuron[offsets[i]:offsets[i+1]]`` and ``step[...]`` (int16 each, 4 bytes
    per spike), so 60k images cost a few hundred MB instead of terabytes of dense traces.

    Args:
        neuron: hidden neuron index of each spike.
        step: time step of each spike.
        offsets: per-image start positions, length ``N + 1``.
        labels: digit of each image.

    Shape:
        - neuron, step: :math:`(E,)` int16; offsets: :math:`(N+1,)` int64; labels: :math:`(N,)`.

    Example:
        >>> h = HiddenEvents(torch.tensor([5, 7], dtype=torch.int16), torch.tensor([10, 20],
        ...     dtype=torch.int16), torch.tensor([0, 2, 2]), torch.tensor([3, 1]))
        >>> len(h), h.batch([0, 1])[0].tolist()
        (2, [0, 0])
    """

    neuron: torch.Tensor
    step: torch.Tensor
    offsets: torch.Tensor
    labels: torch.Tensor

    def __len__(self):
        return self.labels.shape[0]

    def batch(self, index):
        """``(image_in_batch, neuron, step)`` int64 tensors of the images ``index``."""
        bs, ns, ts = [], [], []
        for b, i in enumerate(index):
            lo, hi = int(self.offsets[i]), int(self.offsets[i + 1])
            ns.append(self.neuron[lo:hi])
            ts.append(self.step[lo:hi])
            bs.append(torch.full((hi - lo,), b, dtype=torch.long))
        return torch.cat(bs), torch.cat(ns).long(), torch.cat(ts).long()

    def spikes_per_image(self) -> torch.Tensor:
        """Total hidden spikes of each image."""
        return self.offsets.diff()

    def state_dict(self):
        return {"neuron": self.neuron, "step": self.step, "offsets": self.offsets, "labels": self.labels}


def compute_hidden_events(images, labels, kernels, config=None, device=None, progress=False, desc="hidden"):
    """Run the hidden layer on many images in batches and keep the spikes as :class:`HiddenEvents`.

    Math: see :func:`hidden_layer`; storage is 4 bytes per hidden spike.

    Args:
        images: grey levels; labels: digits; kernels: hidden kernels.
        config: constants (``variant``, ``hidden_batch``).
        device: simulation device; progress: tqdm bar; desc: its label.

    Shape:
        - images: :math:`(N, 28, 28)`; labels: :math:`(N,)`; output: events of ``N`` images.

    Example:
        >>> h = compute_hidden_events(torch.zeros(3, 28, 28, dtype=torch.uint8), torch.zeros(3,
        ...     dtype=torch.long), torch.ones(12, 1, 3, 3), Kulkarni2018Config.quick())
        >>> len(h), int(h.offsets[-1])
        (3, 0)
    """
    cfg = _cfg(config)
    x = _images(images)
    check_tensor(labels, "labels", 1)
    if labels.shape[0] != x.shape[0]:
        raise ValueError(f"labels: expected {x.shape[0]} labels, got {labels.shape[0]}")
    starts = range(0, x.shape[0], cfg.hidden_batch)
    if progress:
        from tqdm.auto import tqdm
        starts = tqdm(starts, desc=desc, leave=False)
    neurons, steps, counts = [], [], []
    for i in starts:
        xb = x[i:i + cfg.hidden_batch]
        b, j, t = hidden_layer(xb, kernels, cfg, record="events", device=device)
        order = torch.argsort(b * cfg.n_steps + t, stable=True)  # group by image
        b, j, t = b[order].cpu(), j[order].cpu(), t[order].cpu()
        neurons.append(j.to(torch.int16))
        steps.append(t.to(torch.int16))
        counts.append(torch.bincount(b, minlength=xb.shape[0]))
    counts = torch.cat(counts)
    offsets = torch.zeros(x.shape[0] + 1, dtype=torch.long)
    offsets[1:] = counts.cumsum(0)
    return HiddenEvents(torch.cat(neurons), torch.cat(steps), offsets, labels.cpu().long().clone())


def target_steps(config: Kulkarni2018Config | None = None) -> torch.Tensor:
    """Steps of the desired spike train of the correct output neuron.

    Math: ``t_i = target_start + i target_period < T dt`` (10, 13.5, ..., 97.5 ms -> 26 spikes).

    Args:
        config: constants.

    Shape:
        - output: :math:`(S,)` int64.

    Example:
        >>> s = target_steps(); len(s), s[:3].tolist()
        (26, [100, 135, 170])
    """
    cfg = _cfg(config)
    n = math.floor((cfg.n_steps * cfg.dt - cfg.target_start) / cfg.target_period - 1e-9) + 1
    t = cfg.target_start + cfg.target_period * torch.arange(max(n, 0), dtype=torch.float64)
    s = torch.round(t / cfg.dt).long()
    return s[s < cfg.n_steps]


def output_layer(events, batch: int, weights: torch.Tensor, config: Kulkarni2018Config | None = None,
                 lateral: bool = True):
    """Spikes of the 10 output LIF neurons from hidden-layer events.

    Math: ``I_j(t) = sum_i W_ji c_i(t) + w_lat sum_{m != j} c^out_m(t)``; the output traces use the
    previous step's spikes.

    Args:
        events: ``(image, neuron, step)`` index tensors (as from :meth:`HiddenEvents.batch`).
        batch: number of images ``B``.
        weights: output weights in pA per unit trace.
        config: constants.
        lateral: apply lateral inhibition.

    Returns:
        ``(spikes, mean_current)``: bool ``(B, 10, T)`` and float ``(B, 10)`` (used to break ties).

    Shape:
        - weights: :math:`(10, 8112)`; outputs: :math:`(B, 10, T)`, :math:`(B, 10)`.

    Example:
        >>> ev = (torch.tensor([0]), torch.tensor([3]), torch.tensor([0]))
        >>> w = torch.zeros(10, 8112); w[2, 3] = 4e4
        >>> s, _ = output_layer(ev, 1, w); s.sum(-1)[0].tolist()
        [0, 0, 2, 0, 0, 0, 0, 0, 0, 0]
    """
    cfg = _cfg(config)
    check_tensor(weights, "weights", 2, floating=True)
    b, j, t = events
    T, dev = cfg.n_steps, weights.device
    drive = torch.zeros(batch * T, weights.shape[0], device=dev, dtype=weights.dtype)
    if b.numel():
        drive.index_add_(0, (b * T + t).to(dev), weights.t()[j.to(dev)])
    drive = drive.view(batch, T, -1)
    a1, a2 = cfg.synapse.decays
    p = cfg.lif
    shape = (batch, weights.shape[0])
    x1 = torch.zeros(shape, device=dev, dtype=weights.dtype)
    x2, y1, y2 = x1.clone(), x1.clone(), x1.clone()
    v = torch.full(shape, p.EL, device=dev, dtype=weights.dtype)
    ref = torch.zeros(shape, dtype=torch.int32, device=dev)
    out = torch.zeros(*shape, T, dtype=torch.bool, device=dev)
    total = torch.zeros(shape, device=dev, dtype=weights.dtype)
    w_lat = cfg.lateral_pA if lateral else 0.0
    last = int(t.max()) if t.numel() else -1
    rh = rheobase(p)
    for step in range(T):
        if w_lat <= 0 and step > last and step % 10 == 0 and float((x1.abs() + x2.abs()).max()) < rh:
            # No input left and |I| <= |x1| + |x2| only decays (lateral input is inhibitory):
            # no output neuron can reach threshold any more.
            break
        x1 = x1 * a1 + drive[:, step]
        x2 = x2 * a2 + drive[:, step]
        cur = x1 - x2
        if w_lat:
            c_out = y1 - y2
            cur = cur + w_lat * (c_out.sum(1, keepdim=True) - c_out)
        total += cur
        s, v, ref = lif_step(v, ref, cur, p, cfg.method)
        out[:, :, step] = s
        y1 = y1 * a1 + s
        y2 = y2 * a2 + s
    return out, total / T


def _predict(out_spikes, mean_current):
    # Most spikes wins; ties (e.g. all silent) go to the largest mean input current.
    return (out_spikes.sum(-1).double() + 0.5 * torch.sigmoid(mean_current.double() / 1e4)).argmax(1)


def predict(hidden: HiddenEvents, weights: torch.Tensor, config: Kulkarni2018Config | None = None,
            batch_size: int = 256, progress: bool = False) -> torch.Tensor:
    """The class of every image of ``hidden``: the output neuron with the most spikes.

    Math: ``pred = argmax_j (#spikes_j)``, ties to the largest mean current.

    Args:
        hidden: hidden-layer events (their labels are not read); weights: output weights;
        config: constants.
        batch_size: images per forward pass; progress: tqdm bar.

    Shape:
        - weights: :math:`(10, 8112)`; output: :math:`(N,)` int64.

    Example:
        >>> h = HiddenEvents(torch.zeros(0, dtype=torch.int16), torch.zeros(0, dtype=torch.int16),
        ...                  torch.zeros(3, dtype=torch.long), torch.tensor([0, 1]))
        >>> predict(h, torch.zeros(10, 8112)).tolist()
        [0, 0]
    """
    cfg = _cfg(config)
    if not isinstance(hidden, HiddenEvents):
        raise TypeError(f"hidden: expected HiddenEvents, got {type(hidden).__name__}")
    if _kernels.available():
        return torch.from_numpy(_kernels.predict(hidden, weights.detach().float().cpu().contiguous(), cfg)).long()
    preds = [torch.zeros(0, dtype=torch.long)]
    starts = range(0, len(hidden), batch_size)
    if progress:
        from tqdm.auto import tqdm
        starts = tqdm(starts, desc="evaluate", leave=False)
    for i in starts:
        idx = list(range(i, min(i + batch_size, len(hidden))))
        out, cur = output_layer(hidden.batch(idx), len(idx), weights, cfg)
        preds.append(_predict(out, cur).cpu())
    return torch.cat(preds)


def evaluate(hidden: HiddenEvents, weights: torch.Tensor, config: Kulkarni2018Config | None = None,
             batch_size: int = 256, progress: bool = False) -> float:
    """Accuracy in percent of the output layer on precomputed hidden events (:func:`predict`).

    Math: ``100 #{pred = label} / N``.

    Args:
        hidden: events with labels; weights: output weights; config: constants.
        batch_size: images per forward pass; progress: tqdm bar.

    Shape:
        - weights: :math:`(10, 8112)`; output: a Python float.

    Example:
        >>> h = HiddenEvents(torch.zeros(0, dtype=torch.int16), torch.zeros(0, dtype=torch.int16),
        ...                  torch.zeros(3, dtype=torch.long), torch.tensor([0, 1]))
        >>> evaluate(h, torch.zeros(10, 8112))
        50.0
    """
    pred = predict(hidden, weights, config, batch_size, progress)
    return 100.0 * int((pred == hidden.labels).sum()) / max(len(hidden), 1)


def _config_key(cfg):
    d = asdict(cfg)
    # fields of the output layer and its training only: the kernels and hidden events stay valid
    for k in ("lr", "lr_halve_every", "lr_halvings", "batch_size", "epochs", "lateral_pA", "normad_tau"):
        d.pop(k)
    if d["cnn_activation"] == "relu":
        del d["cnn_activation"]  # added later: keeps the keys (and caches) of earlier runs valid
    return hashlib.sha1(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]


class _Readout(torch.nn.Module):
    # The trained part of the network, the output weights W, as a module so that a
    # snnlab.runs.Run checkpoints and restores it like the other models' networks.
    def __init__(self, cfg):
        super().__init__()
        self.register_buffer("W", torch.zeros(N_OUT, cfg.n_hidden))


def _upgrade_checkpoint(ck):
    # Checkpoints written before the runs went through snnlab.runs.Run held W, the history and
    # the generator's state at the top level; the NormAD and evaluation times come from the history.
    if isinstance(ck, dict) and "state" not in ck and {"config", "seed", "W", "history", "gen_state"} <= set(ck):
        hist = ck["history"]
        seconds = {"NormAD": sum(h["train_s"] for h in hist), "evaluation": sum(h["eval_s"] for h in hist)}
        return {"config": ck["config"], "seed": ck["seed"], "model": {"W": ck["W"]},
                "state": {"done": [len(hist)], "history": hist, "gen_state": ck["gen_state"], "seconds": seconds}}
    return ck


def reproduce(config: Kulkarni2018Config | None = None, out_dir="runs/kulkarni2018", device=None,
              seed: int = 0, resume: bool = False, progress: bool = True, log=print) -> dict:
    """Train the CNN kernels, compute hidden spikes once, train ``W`` with NormAD, evaluate each epoch.

    Math: ``W <- W + lr sum_batch sum_t e(t) d(t)/||d(t)||``; accuracy = argmax spike count.

    Writes into ``out_dir`` (a :class:`snnlab.runs.Run`): ``results.json`` (the run's header,
    per-epoch train/test accuracy in ``history``, ``best_test_accuracy`` and its epoch,
    ``final_test_accuracy``, seconds per phase), ``weights.pt`` (``W``, kernels, config),
    ``checkpoint.pt`` (after every epoch, for ``resume``) and the kernel and hidden-event caches
    ``kernels_<key>.pt``, ``hidden_{train,test}_<key>.pt`` (reused when the model-defining
    config is unchanged). Every file is written atomically with a SHA-256 sidecar and verified
    when read (:mod:`snnlab.integrity`); the folder is locked while the run lasts, and without
    ``resume`` a folder holding an interrupted run is refused (``ValueError``).

    Args:
        config: protocol (default: the full published one; see :meth:`Kulkarni2018Config.quick`).
        out_dir: output folder (created).
        device: ``None``/``"auto"`` picks CUDA when present.
        seed: seeds the CNN, sample selection and shuffling (0..2**32 - 1).
        resume: continue from ``checkpoint.pt`` (also one written before the runs went through
            :class:`~snnlab.runs.Run`); one of another protocol or seed raises ``ValueError``
            (:meth:`snnlab.runs.Run.check_resume` checks it beforehand), ``epochs`` may grow.
        progress: tqdm bars.
        log: where one-line messages go.

    Returns:
        The results dict written to ``results.json``.

    Shape:
        - results["history"]: list of dicts ``{epoch, lr, train_acc, test_acc, train_s, eval_s}``.

    Example:
        >>> import tempfile
        >>> cfg = Kulkarni2018Config.quick(n_train=20, n_test=10, epochs=1, cnn_samples=64, n_steps=200)
        >>> r = reproduce(cfg, tempfile.mkdtemp(), "cpu", progress=False)  # doctest: +SKIP
        >>> sorted(r)[:3]  # doctest: +SKIP
        ['best_epoch', 'best_test_accuracy', 'cnn_train_accuracy']
    """
    from snnlab import default_device

    cfg = _cfg(config)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed: expected an int, got {seed!r}")
    if not 0 <= seed < 2 ** 32:
        raise ValueError(f"seed: expected an int in 0..{2 ** 32 - 1}, got {seed}")
    for name, val in (("resume", resume), ("progress", progress)):
        if not isinstance(val, bool):
            raise TypeError(f"{name}: expected a bool, got {val!r}")
    dev = default_device(device)
    n_threads = torch.get_num_threads()
    if dev.type == "cpu":
        # The hidden and output loops run thousands of small element-wise ops, where intra-op
        # threads mostly add synchronisation; on a shared 2-core machine one thread was 2-10x faster.
        torch.set_num_threads(1)
    try:
        with Run(out_dir, resume) as run:  # one run at a time in a folder
            return _reproduce(run, cfg, dev, seed, progress, log)
    finally:
        torch.set_num_threads(n_threads)


def _reproduce(run, cfg, dev, seed, progress, log):
    from snnlab.data import load_mnist

    out = run.out
    # The compiled loops run on the CPU whatever the device: 10 neurons stepped 1000 times
    # per image are dispatch-bound on any accelerator, ~1 ms per image here.
    train_dev = torch.device("cpu") if _kernels.available() else dev
    net = _Readout(cfg)
    fresh = {"done": [0], "history": [], "gen_state": None, "seconds": {}}
    state = run.restore(net, cfg, seed, fresh, log)  # refuses a mismatch before any work
    resumed_from = None if state is fresh else state["done"][0]
    timer = PhaseTimer(state["seconds"])
    save = run.saver(net, cfg, seed, state, timer)

    xtr, ytr = load_mnist(train=True)
    xte, yte = load_mnist(train=False)
    gen = torch.Generator().manual_seed(seed)
    tr_idx = torch.randperm(60000, generator=gen)[: cfg.n_train].sort().values
    cnn_idx = torch.randperm(60000, generator=gen)[: cfg.cnn_samples]
    te_idx = torch.arange(cfg.n_test)  # the first n_test test images (all 10k for the full run)
    if state["gen_state"] is not None:
        gen.set_state(state["gen_state"])  # the shuffles continue where the run stopped

    key = f"{_config_key(cfg)}_s{seed}"

    # 1. Kernels from the one-epoch non-spiking CNN.
    with timer("CNN kernels"):
        kpath = out / f"kernels_{key}.pt"
        if kpath.exists():
            kd = load_torch(kpath)
            kernels, cnn_acc = kd["kernels"], kd["cnn_train_acc"]
        else:
            kernels, cnn_acc = train_kernels(xtr[cnn_idx], ytr[cnn_idx], cfg, seed, dev, progress)
            save_torch({"kernels": kernels, "cnn_train_acc": cnn_acc}, kpath)

    # 2. Hidden spikes, once per image (they do not depend on W).
    def hidden_cache(name, x, y):
        path = out / f"hidden_{name}_{key}.pt"
        with timer(f"hidden {name}"):
            if path.exists():
                return HiddenEvents(**load_torch(path))
            h = compute_hidden_events(x, y, kernels, cfg, dev, progress, desc=f"hidden ({name})")
            save_torch(h.state_dict(), path)
            return h

    h_train = hidden_cache("train", xtr[tr_idx], ytr[tr_idx])
    h_test = hidden_cache("test", xte[te_idx], yte[te_idx])

    # 3. NormAD training of the output weights.
    net.to(train_dev)
    _train(cfg, net.W, gen, state, timer, save, h_train, h_test, progress)

    history = state["history"]
    best = max(history, key=lambda h: h["test_acc"]) if history else {"epoch": 0, "test_acc": float("nan")}
    spt = h_train.spikes_per_image().double()
    results = run.header("kulkarni2018", cfg, seed, dev, state)
    results.update({
        "history": history,
        "best_test_accuracy": best["test_acc"],
        "best_epoch": best["epoch"],
        "final_test_accuracy": history[-1]["test_acc"] if history else float("nan"),
        "paper_accuracy": PAPER_ACCURACY,
        "cnn_train_accuracy": cnn_acc,
        "hidden_spikes_per_image_mean": float(spt.mean()) if len(spt) else 0.0,
        "resumed_from_epoch": resumed_from,
        "wall_time_per_phase_s": timer.seconds,
    })
    save_torch({"W": net.W.cpu(), "kernels": kernels, "config": asdict(cfg)}, out / "weights.pt")
    run.write_results(results)
    return results


def _train(cfg, W, gen, state, timer, save, h_train, h_test, progress):
    # NormAD epochs from state["done"][0] on, W updated in place; state and checkpoint after each
    compiled = _kernels.available()
    dev = W.device
    g = normad_kernel(cfg.n_steps, cfg.synapse, cfg.normad_tau).float().to(dev)
    desired = target_steps(cfg)
    start = state["done"][0]
    epochs = range(start, cfg.epochs)
    if progress:
        from tqdm.auto import tqdm
        epochs = tqdm(epochs, desc="NormAD epochs", initial=start, total=cfg.epochs)
    for ep in epochs:
        lr = cfg.lr_at(ep)
        seconds = dict(timer.seconds)
        with timer("NormAD"):
            perm = torch.randperm(len(h_train), generator=gen).tolist()
            correct = 0
            # compiled: pieces of whole batches, so that the bar moves; torch: one batch at a time
            step = cfg.batch_size * max(1, 2048 // cfg.batch_size) if compiled else cfg.batch_size
            starts = range(0, len(perm), step)
            if progress:  # an epoch of the full protocol takes minutes
                starts = tqdm(starts, desc=f"epoch {ep + 1} (lr {lr:g} pA)", leave=False,
                              unit_scale=step, unit="img")
            for i in starts:
                idx = perm[i:i + step]
                if compiled:
                    correct += _kernels.train_epoch(h_train, W, lr, cfg, idx, g, desired)
                    continue
                ev = h_train.batch(idx)
                labels = h_train.labels[idx]
                outs, cur = output_layer(ev, len(idx), W, cfg)
                correct += int((_predict(outs, cur).cpu() == labels).sum())
                W += lr * normad_update(ev, len(idx), outs, labels.to(dev), desired, g, cfg.n_hidden)
        with timer("evaluation"):
            test_acc = evaluate(h_test, W, cfg)
        spent = {k: timer.seconds[k] - seconds.get(k, 0.0) for k in ("NormAD", "evaluation")}
        state["history"].append({"epoch": ep + 1, "lr": lr, "train_acc": 100.0 * correct / len(perm),
                                 "test_acc": test_acc, "train_s": spent["NormAD"], "eval_s": spent["evaluation"]})
        state["done"][0] = ep + 1
        state["gen_state"] = gen.get_state()
        if progress:
            epochs.set_postfix(train=f"{state['history'][-1]['train_acc']:.1f}", test=f"{test_acc:.1f}")
        save()
