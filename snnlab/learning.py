"""Learning rules: STDP, anti-STDP, R-STDP and their learning-rate schedules; NormAD.

Weights change by explicit updates under ``torch.no_grad()``; rates are float32 tensors
``(F, 2)`` holding ``(a_plus, a_minus)`` per feature map, so they can live on the device.

STDP for a winner ``(f, y, x)`` of a layer with ``kh x kw`` kernels: a synapse of the
receptive field ``input[:, y:y+kh, x:x+kw]`` is potentiated when its input spiked at or
before the winner (``t_in <= t_out``), else depressed:
``dw = a * (w - LB)(UB - w)`` (stabiliser) or ``dw = a``; then all weights are clipped to
``[LB, UB]``. All winners of one sample use the same pre-update weights.

NormAD (Anwani & Rajendran 2015, as used by Kulkarni & Rajendran 2018) trains the weights of
LIF outputs towards desired spike trains: at every desired or observed output spike, the
weights move along the normalised input traces filtered by the membrane
(:func:`normad_kernel`, :func:`normad_update`).
"""
from __future__ import annotations

import numpy as np
import torch

from ._checks import check_positive_int, check_tensor
from .neurons import SynapseParams, synaptic_kernel

__all__ = [
    "stdp_pairing",
    "stdp_rates_for_winners",
    "apply_stdp",
    "batch_stdp",
    "convergence",
    "FLUSH_BELOW",
    "rstdp_select",
    "rate_schedule",
    "RateDoubling",
    "adaptive_rstdp_rates",
    "spike_times_of",
    "normad_kernel",
    "normad_update",
]


def spike_times_of(x: torch.Tensor) -> torch.Tensor:
    """Spike times ``T - sum_t S[t]`` of a (batched) spike-wave ``(B, T, C, H, W)``, as int16."""
    return x.shape[1] - x.sum(1, dtype=torch.int16)


def _receptive_fields(input_times, winners, kernel_size):
    # input_times (B, C, H, W); winners (B, k, 3) -> (B, k, C, kh, kw), -1 rows clamped to 0
    kh, kw = kernel_size
    b, k = winners.shape[:2]
    dev = input_times.device
    y = winners[..., 1].clamp_min(0)
    x = winners[..., 2].clamp_min(0)
    ys = (y.unsqueeze(-1) + torch.arange(kh, device=dev)).view(b, k, kh, 1)
    xs = (x.unsqueeze(-1) + torch.arange(kw, device=dev)).view(b, k, 1, kw)
    bi = torch.arange(b, device=dev).view(b, 1, 1, 1)
    patches = input_times.permute(0, 2, 3, 1)[bi, ys, xs]  # (B, k, kh, kw, C)
    return patches.permute(0, 1, 4, 2, 3)


def stdp_pairing(input_times: torch.Tensor, output_times: torch.Tensor, winners: torch.Tensor,
                 kernel_size) -> torch.Tensor:
    r"""Pre-before-post ordering of every synapse of every winner: :math:`[t_{in} \le t_{out}]`.

    Args:
        input_times: spike times of the (padded) layer input; ``T`` or more = no spike.
        output_times: spike times of the layer output.
        winners: ``(feature, y, x)`` rows, ``-1`` rows are padding.
        kernel_size: ``(kh, kw)``.

    Returns:
        bool tensor, True where the synapse is potentiated (LTP).

    Shape:
        - input_times: :math:`(B, C, H, W)`; output_times: :math:`(B, F, H', W')`;
          winners: :math:`(B, k, 3)`.
        - Output: :math:`(B, k, C, k_h, k_w)`.

    Example:
        >>> tin = torch.tensor([[[[0, 3], [1, 2]]]])
        >>> tout = torch.tensor([[[[1]]]])
        >>> stdp_pairing(tin, tout, torch.tensor([[[0, 0, 0]]]), (2, 2))[0, 0, 0]
        tensor([[ True, False],
                [ True, False]])
    """
    check_tensor(input_times, "input_times", 4)
    check_tensor(output_times, "output_times", 4)
    check_tensor(winners, "winners", 3)
    b = winners.shape[0]
    f = winners[..., 0].clamp_min(0)
    y = winners[..., 1].clamp_min(0)
    x = winners[..., 2].clamp_min(0)
    t_out = output_times[torch.arange(b, device=winners.device).view(b, 1), f, y, x]
    t_in = _receptive_fields(input_times, winners, kernel_size)
    return t_in.to(torch.int16) <= t_out.to(torch.int16).view(*t_out.shape, 1, 1, 1)


def stdp_rates_for_winners(pairing: torch.Tensor, winners: torch.Tensor, rates: torch.Tensor) -> torch.Tensor:
    r"""Learning rate of every synapse of every winner: :math:`a = a^+_f` (LTP) or :math:`a^-_f` (LTD).

    Args:
        pairing: from :func:`stdp_pairing`.
        winners: ``(B, k, 3)``; ``-1`` rows get rate 0.
        rates: ``(F, 2)`` per-feature ``(a_plus, a_minus)``, or ``(B, F, 2)`` per sample.

    Shape:
        - Output: :math:`(B, k, C, k_h, k_w)` float32.
    """
    f = winners[..., 0]
    valid = f >= 0
    fc = f.clamp_min(0)
    if rates.dim() == 2:
        r = rates[fc]                                        # (B, k, 2)
    else:
        r = rates[torch.arange(f.shape[0], device=f.device).view(-1, 1), fc]
    ap = r[..., 0].view(*f.shape, 1, 1, 1)
    an = r[..., 1].view(*f.shape, 1, 1, 1)
    lr = torch.where(pairing, ap, an)
    return lr * valid.view(*f.shape, 1, 1, 1)


#: weights below this magnitude are set to 0 after an update: stabilised LTD drives weights
#: geometrically towards 0, and subnormal floats slow CPU convolutions ~5x
FLUSH_BELOW = 1e-30


def convergence(weight: torch.Tensor, lower: float = 0.0, upper: float = 1.0) -> float:
    r"""How far STDP has settled: :math:`C = \frac{1}{N}\sum_i (w_i - LB)(UB - w_i)`, 0 when every
    weight sits at a bound (the stabiliser's fixed points), at most :math:`(UB - LB)^2 / 4`.

    Args:
        weight: weights.
        lower, upper: the bounds ``LB < UB``.

    Shape:
        - weight: any shape.

    Example:
        >>> convergence(torch.tensor([0.0, 1.0, 0.5, 0.5]))
        0.125
    """
    check_tensor(weight, "weight")
    if not lower < upper:
        raise ValueError(f"lower, upper: expected lower < upper, got {lower}, {upper}")
    w = weight.detach()
    return float(((w - lower) * (upper - w)).mean())


def _stabilise(w, use_stabilizer, lower, upper):
    return (w - lower) * (upper - w) if use_stabilizer else 1.0


def _finish(weight, rows, lower, upper, clamp_all, flush_below):
    if clamp_all:
        weight.clamp_(lower, upper)
    else:
        weight[rows] = weight[rows].clamp(lower, upper)
    if flush_below > 0:
        # stabilised LTD drives weights geometrically to 0; subnormals slow CPU convolutions
        weight.masked_fill_(weight.abs() < flush_below, 0.0)


@torch.no_grad()
def apply_stdp(weight: torch.Tensor, winners: torch.Tensor, lr: torch.Tensor, use_stabilizer: bool = True,
               lower: float = 0.0, upper: float = 1.0, clamp_all: bool = True, flush_below: float = 0.0) -> torch.Tensor:
    r"""Apply one sample's STDP update in place: :math:`w_f \mathrel{+}= a \cdot s(w_f)`, then clip.

    Args:
        weight: kernels ``(F, C, kh, kw)``, updated in place.
        winners: ``(k, 3)`` winners of the sample (``-1`` rows ignored).
        lr: ``(k, C, kh, kw)`` rates from :func:`stdp_rates_for_winners`.
        use_stabilizer: multiply by :math:`s(w) = (w - LB)(UB - w)`.
        lower, upper: weight bounds ``LB``, ``UB``.
        clamp_all: clip every kernel (the reference semantics) or only the winners'
            (equivalent once all kernels are within bounds).
        flush_below: weights with magnitude below this become exactly 0 (0 disables).

    Returns:
        ``weight``.

    Example:
        >>> w = torch.full((2, 1, 1, 1), 0.5)
        >>> apply_stdp(w, torch.tensor([[1, 0, 0]]), torch.full((1, 1, 1, 1), 0.1)).flatten().tolist()
        [0.5, 0.5249999761581421]
    """
    check_tensor(weight, "weight", 4, floating=True)
    check_tensor(winners, "winners", 2)
    f = winners[:, 0]
    valid = f >= 0
    rows = f.clamp_min(0)
    full = torch.zeros_like(weight)
    # padded rows carry rate 0; index_put_ with accumulate keeps repeated row 0 harmless
    full.index_put_((rows,), lr * valid.view(-1, 1, 1, 1), accumulate=True)
    weight += full * _stabilise(weight, use_stabilizer, lower, upper)
    _finish(weight, rows, lower, upper, clamp_all, flush_below)
    return weight


@torch.no_grad()
def batch_stdp(weight: torch.Tensor, winners: torch.Tensor, lr: torch.Tensor, use_stabilizer: bool = True,
               lower: float = 0.0, upper: float = 1.0, reduce: str = "sum", flush_below: float = 0.0) -> torch.Tensor:
    r"""Apply the accumulated STDP updates of a mini-batch at once (batched mode).

    :math:`w \mathrel{+}= \left(\sum_b a_b\right) s(w)` (``reduce="sum"``) or divided by the
    number of samples that had winners (``"mean"``); then clip. Unlike the exact mode, all
    samples see the same weights.

    Args:
        weight: ``(F, C, kh, kw)``, updated in place.
        winners: ``(B, k, 3)``.
        lr: ``(B, k, C, kh, kw)``.
        use_stabilizer, lower, upper, flush_below: as in :func:`apply_stdp`.
        reduce: ``"sum"`` or ``"mean"``.

    Example:
        >>> w = torch.full((1, 1, 1, 1), 0.5)
        >>> batch_stdp(w, torch.zeros(2, 1, 3, dtype=torch.long), torch.full((2, 1, 1, 1, 1), 0.1),
        ...            use_stabilizer=False).item()
        0.699999988079071
    """
    if reduce not in ("sum", "mean"):
        raise ValueError(f"reduce: expected 'sum' or 'mean', got {reduce!r}")
    check_tensor(winners, "winners", 3)
    f = winners[..., 0].reshape(-1)
    valid = f >= 0
    total = torch.zeros_like(weight)
    total.index_put_((f.clamp_min(0),), lr.reshape(-1, *lr.shape[2:]) * valid.view(-1, 1, 1, 1), accumulate=True)
    if reduce == "mean":
        n = (winners[..., 0] >= 0).any(1).sum().clamp_min(1)
        total = total / n
    weight += total * _stabilise(weight, use_stabilizer, lower, upper)
    _finish(weight, None, lower, upper, True, flush_below)
    return weight


def rstdp_select(decision: torch.Tensor, target: torch.Tensor, reward_rates: torch.Tensor,
                 punish_rates: torch.Tensor) -> torch.Tensor:
    r"""Per-sample R-STDP rates: reward (STDP) when right, punishment (anti-STDP) when wrong,
    zero when silent (``decision == -1``).

    Shape:
        - decision, target: :math:`(B,)`; reward_rates, punish_rates: :math:`(F, 2)`.
        - Output: :math:`(B, F, 2)`.

    Example:
        >>> r = rstdp_select(torch.tensor([1, 2, -1]), torch.tensor([1, 1, 1]),
        ...                  torch.tensor([[1., -1.]]), torch.tensor([[-2., 2.]]))
        >>> r[:, 0].tolist()
        [[1.0, -1.0], [-2.0, 2.0], [0.0, 0.0]]
    """
    correct = (decision == target).view(-1, 1, 1)
    silent = (decision < 0).view(-1, 1, 1)
    r = torch.where(correct, reward_rates.unsqueeze(0), punish_rates.unsqueeze(0))
    return r.masked_fill(silent, 0.0)


def rate_schedule(n_samples: int, a_plus: float, every: int = 500, max_a_plus: float = 0.15,
                  ratio: float = -0.75, counter: int = 0, a_minus: float | None = None):
    r"""Learning rates of the next ``n_samples`` under the reference's rate doubling.

    A counter is incremented before each sample; when it reaches ``every`` it is reset and
    :math:`a^+ \leftarrow \min(2a^+, a^+_{max})`, :math:`a^- = r\,a^+` (float32 arithmetic,
    as the reference), before that sample's update.

    Args:
        n_samples: number of samples.
        a_plus: current LTP rate.
        every: doubling period in samples.
        max_a_plus: cap of ``a_plus``.
        ratio: ``a_minus / a_plus`` after each doubling.
        counter: samples counted since the last doubling.
        a_minus: current LTD rate (default: ``ratio * a_plus``).

    Returns:
        ``(rates, counter)``: float32 ``(n_samples, 2)`` and the counter after them.

    Example:
        >>> r, c = rate_schedule(1000, 0.004, a_minus=-0.003)
        >>> r[498].tolist(), r[499].tolist(), c
        ([0.004000000189989805, -0.003000000026077032], [0.00800000037997961, -0.006000000052154064], 0)
    """
    check_positive_int(every, "every")
    f32 = np.float32
    ap = f32(a_plus)
    an = f32(ratio * a_plus if a_minus is None else a_minus)
    cap, rt = f32(max_a_plus), f32(ratio)
    out = np.empty((n_samples, 2), dtype=np.float32)
    for i in range(n_samples):
        counter += 1
        if counter >= every:
            counter = 0
            ap = min(f32(ap * f32(2)), cap)
            an = f32(ap * rt)
        out[i] = (ap, an)
    return torch.from_numpy(out), counter


class RateDoubling:
    """Stateful form of :func:`rate_schedule` for sample-by-sample loops.

    ``every=None`` never doubles (fixed rates).

    Example:
        >>> sched = RateDoubling(0.004, -0.003, every=2)
        >>> [round(sched.step()[0], 4) for _ in range(4)]
        [0.004, 0.008, 0.008, 0.016]
        >>> [round(a, 4) for a in sched.rates(2)[:, 0].tolist()], sched.state_dict()["counter"]
        ([0.016, 0.032], 0)
    """

    def __init__(self, a_plus: float, a_minus: float, every: int | None = 500, max_a_plus: float = 0.15,
                 ratio: float = -0.75, counter: int = 0):
        self.a_plus, self.a_minus = float(np.float32(a_plus)), float(np.float32(a_minus))
        self.every = 2 ** 62 if every is None else every  # never reached: fixed rates
        self.max_a_plus, self.ratio, self.counter = max_a_plus, ratio, counter

    def step(self):
        """Count one sample; return the ``(a_plus, a_minus)`` to use for it."""
        r, self.counter = rate_schedule(1, self.a_plus, self.every, self.max_a_plus, self.ratio,
                                        self.counter, self.a_minus)
        self.a_plus, self.a_minus = float(r[0, 0]), float(r[0, 1])
        return self.a_plus, self.a_minus

    def rates(self, n: int) -> torch.Tensor:
        """The ``(a_plus, a_minus)`` of the next ``n`` samples, float32 ``(n, 2)``; advances the state."""
        r, self.counter = rate_schedule(n, self.a_plus, self.every, self.max_a_plus, self.ratio, self.counter,
                                        self.a_minus)
        if n:
            self.a_plus, self.a_minus = float(r[-1, 0]), float(r[-1, 1])
        return r

    def state_dict(self) -> dict:
        return {"a_plus": self.a_plus, "a_minus": self.a_minus, "counter": self.counter}

    def load_state_dict(self, state: dict) -> None:
        self.a_plus, self.a_minus, self.counter = state["a_plus"], state["a_minus"], state["counter"]


def adaptive_rstdp_rates(reward, punish, correct_fraction: float, wrong_fraction: float,
                         minimum: float = 0.0, scale: float = 1.0):
    r"""Adaptive R-STDP rates after a block of samples (Mozafari et al.).

    Reward rates are scaled by the block's fraction of wrong decisions and punishment rates
    by its fraction of correct ones: :math:`a_r = a_r^0 (s\,p_{wrong} + m)`,
    :math:`a_p = a_p^0 (s\,p_{correct} + m)`. Mozafari 2019 (MNIST) uses ``m = 0, s = 1``;
    their shallow network of 2018 keeps a floor, ``m = 0.2, s = 0.8``, so that learning never
    stops even when a block has no mistakes.

    Args:
        reward: base ``(a_plus, a_minus)`` of the reward (STDP).
        punish: base ``(a_plus, a_minus)`` of the punishment (anti-STDP).
        correct_fraction, wrong_fraction: fractions of the block, in [0, 1].
        minimum, scale: the floor ``m`` and the slope ``s`` (non-negative).

    Returns:
        ``(reward_rates, punish_rates)`` as tuples of floats.

    Shape:
        - scalars and pairs only.

    Example:
        >>> rw, pn = adaptive_rstdp_rates((0.004, -0.003), (-0.004, 0.0005), 0.75, 0.25)
        >>> [round(a, 6) for a in rw + pn]
        [0.001, -0.00075, -0.003, 0.000375]
        >>> rw, pn = adaptive_rstdp_rates((0.004, -0.003), (-0.004, 0.0005), 1.0, 0.0, 0.2, 0.8)
        >>> [round(a, 6) for a in rw + pn]
        [0.0008, -0.0006, -0.004, 0.0005]
    """
    for name, v in (("correct_fraction", correct_fraction), ("wrong_fraction", wrong_fraction)):
        if not 0.0 <= float(v) <= 1.0:
            raise ValueError(f"{name}: expected a fraction in [0, 1], got {v!r}")
    for name, v in (("minimum", minimum), ("scale", scale)):
        if not 0.0 <= float(v) < float("inf"):
            raise ValueError(f"{name}: expected a non-negative number, got {v!r}")
    # float32 base rates, as the reference reads them back from float32 tensors
    rw = tuple(float(np.float32(a)) * (float(wrong_fraction) * scale + minimum) for a in reward)
    pn = tuple(float(np.float32(a)) * (float(correct_fraction) * scale + minimum) for a in punish)
    return rw, pn


def normad_kernel(n_steps: int, synapse: SynapseParams | None = None, tau_m: float = 1.0) -> torch.Tensor:
    """Synaptic kernel filtered by the membrane impulse response (NormAD's ``d(t)`` kernel).

    Math: ``g = dt (k * h)``, ``h(n) = exp(-n dt / tau_m)``, ``k`` the
    :func:`~snnlab.neurons.synaptic_kernel` (discrete causal convolution, ``n = 0..T-1``; the
    scale cancels in NormAD's normalisation).

    Args:
        n_steps: length ``T``.
        synapse: the synapse's time constants and step (default
            :class:`~snnlab.neurons.SynapseParams`).
        tau_m: time constant of the membrane filter in ms (1 ms in Kulkarni & Rajendran's code).

    Shape:
        - output: :math:`(T,)` float64.

    Example:
        >>> g = normad_kernel(1000)
        >>> float(g[0]), bool(g.argmax() > synaptic_kernel(1000).argmax())
        (0.0, True)
    """
    if synapse is not None and not isinstance(synapse, SynapseParams):
        raise TypeError(f"synapse: expected a SynapseParams or None, got {type(synapse).__name__}")
    p = SynapseParams() if synapse is None else synapse
    k = synaptic_kernel(n_steps, p).numpy()  # checks n_steps
    if isinstance(tau_m, bool) or not isinstance(tau_m, (int, float)) or not 0 < tau_m < float("inf"):
        raise ValueError(f"tau_m: expected a positive number (ms), got {tau_m!r}")
    h = np.exp(-np.arange(n_steps) * p.dt / tau_m)
    return torch.from_numpy(np.convolve(k, h)[:n_steps] * p.dt)


def normad_update(events, batch: int, out_spikes: torch.Tensor, labels: torch.Tensor, desired: torch.Tensor,
                  g: torch.Tensor, n_inputs: int) -> torch.Tensor:
    """Summed NormAD weight change of a batch of images (before the learning rate).

    Math: ``dW_j = sum_t e_j(t) d(t)/||d(t)||``, ``e_j = S_desired,j - S_observed,j``,
    ``d_i(t) = sum_{s <= t} g(t - s)`` over the spikes ``s`` of input ``i``.

    The output of the correct class should fire at the steps ``desired``, the others never;
    ``e`` is nonzero only at desired or observed output spikes, so the sums run over those
    steps. The compiled loop of Kulkarni & Rajendran's training
    (``snnlab.models._kulkarni_kernels``) computes the same per image and is tested against this.

    Args:
        events: ``(image, input, step)`` int64 index tensors, one entry per input spike.
        batch: number of images ``B``.
        out_spikes: observed output spikes.
        labels: correct class of each image.
        desired: steps of the desired spike train of the correct output.
        g: :func:`normad_kernel` (at least ``T`` long; computed in float32).
        n_inputs: number of inputs ``N`` (columns of ``W``).

    Shape:
        - events: three :math:`(E,)`; out_spikes: :math:`(B, O, T)`; labels: :math:`(B,)`;
          desired: :math:`(S,)`; g: :math:`(T,)`; output: :math:`(O, N)` float32.

    Example:
        >>> ev = (torch.tensor([0]), torch.tensor([3]), torch.tensor([0]))
        >>> out = torch.zeros(1, 10, 1000, dtype=torch.bool)
        >>> dw = normad_update(ev, 1, out, torch.tensor([4]), torch.arange(100, 1000, 35), normad_kernel(1000), 20)
        >>> dw.shape, round(float(dw[4, 3]), 3), float(dw.abs().sum() - dw[4, 3].abs())
        (torch.Size([10, 20]), 26.0, 0.0)
    """
    batch = check_positive_int(batch, "batch")
    n_inputs = check_positive_int(n_inputs, "n_inputs")
    if not (isinstance(events, (tuple, list)) and len(events) == 3):
        raise TypeError(f"events: expected three (image, input, step) index tensors, got {type(events).__name__}")
    for name, x in zip(("events[0]", "events[1]", "events[2]"), events):
        check_tensor(x, name, 1)
    check_tensor(out_spikes, "out_spikes", 3)
    check_tensor(labels, "labels", 1)
    check_tensor(desired, "desired", 1)
    check_tensor(g, "g", 1, floating=True)
    if out_spikes.shape[0] != batch or labels.shape[0] != batch:
        raise ValueError(f"out_spikes/labels: expected {batch} images, got "
                         f"{out_spikes.shape[0]}/{labels.shape[0]}")
    if g.shape[0] < out_spikes.shape[2]:
        raise ValueError(f"g: expected at least T = {out_spikes.shape[2]} steps, got {g.shape[0]}")
    dev = out_spikes.device
    g = g.to(device=dev, dtype=torch.float32)
    desired = desired.to(dev)
    b_all, j_all, t_all = (e.to(dev) for e in events)
    n_out = out_spikes.shape[1]
    dw = torch.zeros(n_out, n_inputs, device=dev)
    # Events are grouped per image only after sorting; a mask per image is cheap enough for B<=64.
    for bi in range(batch):
        m = b_all == bi
        j, t = j_all[m], t_all[m]
        obs_j, obs_t = out_spikes[bi].nonzero(as_tuple=True)
        q = torch.unique(torch.cat([desired, obs_t]))
        err = torch.zeros(n_out, q.numel(), device=dev)
        err[int(labels[bi])] += torch.isin(q, desired).float()
        err.index_put_((obs_j, torch.searchsorted(q, obs_t)), torch.tensor(-1.0, device=dev), accumulate=True)
        if t.numel() == 0:
            continue
        # Only inputs that spiked have d != 0: work on those columns (~15% of Kulkarni's 8112).
        active, local = torch.unique(j, return_inverse=True)
        lag = q[:, None] - t[None, :]
        vals = torch.where(lag >= 0, g[lag.clamp(min=0)], torch.zeros((), device=dev))
        d = torch.zeros(q.numel(), active.numel(), device=dev).index_add_(1, local, vals)
        norm = d.norm(dim=1, keepdim=True)
        d = torch.where(norm > 0, d / norm.clamp(min=1e-12), d)
        dw.index_add_(1, active, err @ d)
    return dw
