"""Learners attached to a layer: STDP and R-STDP, on the fast exact engine.

A learner holds a rule's parameters (rates, stabiliser, bounds) and trains the weights of one
:class:`~snnlab.layers.SpikingConv`, whose threshold, k, radius and padding say how the layer
fires and competes. ``fit``/``epoch`` run the exact sample-by-sample semantics of the
reference library through :mod:`snnlab.training` (chunked by correction, compiled CPU loops,
device batching: the same weights bit for bit, tested), so a network built from these parts
trains as fast as the reproductions, which are built from them.

Example: a two-layer STDP network on 500 digits (about 5 seconds on a CPU)::

    import snnlab as sl
    times, _ = sl.data.encoded_mnist(sl.Encoder.kheradpisheh2018(), train=True, limit=500)
    conv1 = sl.SpikingConv(2, 32, 5, threshold=10, k=5, radius=2, padding=2)
    conv2 = sl.SpikingConv(32, 150, 2, threshold=1, k=8, radius=1, padding=1)
    sl.STDP(conv1).fit(times, schedule=sl.RateDoubling(0.004, -0.003))
    hidden = sl.inhibit_times(sl.pool_times(conv1.times(times), 2, 2, 1), 15)
    sl.STDP(conv2).fit(hidden, schedule=sl.RateDoubling(0.004, -0.003))
"""
from __future__ import annotations

import torch
import torch.nn as nn

from ._batching import chunks
from ._checks import as_batch, check_nonnegative_int, check_positive_int
from .layers import SpikingConv, pad_times
from .learning import (FLUSH_BELOW, RateDoubling, adaptive_rstdp_rates, apply_stdp, convergence, spike_times_of,
                       stdp_pairing, stdp_rates_for_winners)
from .training import StdpLayer, decide, train_rstdp, train_stdp

__all__ = ["STDP", "RSTDP"]


def _as_rates(learning_rate, n_features):
    r = torch.as_tensor(learning_rate, dtype=torch.float32)
    if r.shape == (2,):
        r = r.expand(n_features, 2).clone()
    if r.shape != (n_features, 2):
        raise ValueError(f"learning_rate: expected (a_plus, a_minus) or ({n_features}, 2) rates, got shape {tuple(r.shape)}")
    return r


def _spiking(layer, name="layer") -> SpikingConv:
    if not isinstance(layer, SpikingConv):
        raise TypeError(f"{name}: expected a snnlab.layers.SpikingConv (it carries threshold, k, radius and "
                        f"padding), got {type(layer).__name__}")
    return layer


class STDP(nn.Module):
    r"""STDP of a convolution: :math:`\Delta w = a^{\pm} s(w)`, :math:`a^+` if :math:`t_{in} \le t_{out}`.

    For each winner ``(f, y, x)`` of a sample, the synapses of its receptive field whose input
    spiked no later than it are potentiated (``a_plus``), the others depressed (``a_minus``);
    :math:`s(w) = (w - LB)(UB - w)` with the stabiliser, else 1; then the weights are clipped to
    ``[LB, UB]`` and those below ``flush_below`` set to 0.

    Called as a module (SpykeTorch's form) it applies one batch of already computed winners,
    sample by sample; :meth:`fit` trains a :class:`~snnlab.layers.SpikingConv` on spike times
    with the fast exact engine.

    Args:
        layer: the convolution whose ``weight`` learns.
        learning_rate: ``(a_plus, a_minus)`` for all features, or ``(F, 2)``.
        use_stabilizer: multiply updates by :math:`(w - LB)(UB - w)`.
        lower_bound, upper_bound: weight bounds.
        flush_below: weights below this magnitude become 0 after each update (subnormal
            weights slow CPU convolutions ~5x; 0 keeps them, as the reference library does).

    Shape:
        - forward: input_spikes :math:`(B, T, C, H, W)`, output_spikes :math:`(B, T, F, H', W')`,
          winners :math:`(B, k, 3)` (or without ``B``); samples are applied in order.
        - fit: input_times :math:`(N, C, H, W)` uint8 (``T`` = no spike), before the layer's padding.

    Example:
        >>> conv = SpikingConv(1, 2, 2, threshold=1.0, k=1)
        >>> stdp = STDP(conv, (0.004, -0.003))
        >>> stdp(torch.ones(3, 1, 2, 2), torch.ones(3, 2, 1, 1), torch.tensor([[0, 0, 0]]))
        >>> stdp.fit(torch.zeros(4, 1, 3, 3, dtype=torch.uint8))[0]["winners_per_sample"]
        1.0
    """

    def __init__(self, layer, learning_rate=(0.004, -0.003), use_stabilizer: bool = True,
                 lower_bound: float = 0.0, upper_bound: float = 1.0, flush_below: float = FLUSH_BELOW):
        super().__init__()
        if not hasattr(layer, "weight") or not isinstance(layer.weight, torch.Tensor) or layer.weight.dim() != 4:
            raise TypeError(f"layer: expected a convolution with a 4-D weight, got {type(layer).__name__}")
        if not lower_bound < upper_bound:
            raise ValueError(f"lower_bound, upper_bound: expected lower < upper, got {lower_bound}, {upper_bound}")
        self.layer = layer
        self.register_buffer("rates", _as_rates(learning_rate, layer.weight.shape[0]).to(layer.weight.device))
        self.use_stabilizer = bool(use_stabilizer)
        self.lower_bound, self.upper_bound = float(lower_bound), float(upper_bound)
        self.flush_below = float(flush_below)

    def set_rates(self, a_plus: float, a_minus: float, features=None) -> None:
        """Set ``(a_plus, a_minus)`` of all features (or of ``features``)."""
        idx = slice(None) if features is None else torch.as_tensor(features, dtype=torch.long)
        self.rates[idx, 0] = a_plus
        self.rates[idx, 1] = a_minus

    @torch.no_grad()
    def forward(self, input_spikes, output_spikes, winners) -> None:
        xin, _ = as_batch(input_spikes, "input_spikes", 5)
        xout, _ = as_batch(output_spikes, "output_spikes", 5)
        wb, _ = as_batch(winners, "winners", 3)
        if not (xin.shape[0] == xout.shape[0] == wb.shape[0]):
            raise ValueError(f"input_spikes, output_spikes, winners: batch sizes differ "
                             f"({xin.shape[0]}, {xout.shape[0]}, {wb.shape[0]})")
        weight = self.layer.weight
        pairing = stdp_pairing(spike_times_of(xin), spike_times_of(xout), wb, weight.shape[-2:])
        lr = stdp_rates_for_winners(pairing, wb, self.rates)
        for i in range(wb.shape[0]):
            apply_stdp(weight.data, wb[i], lr[i], self.use_stabilizer, self.lower_bound,
                       self.upper_bound, True, self.flush_below)

    def spec(self) -> StdpLayer:
        """The engine's view of the layer and this rule (:class:`snnlab.training.StdpLayer`)."""
        layer = _spiking(self.layer)
        if layer.threshold is None:
            raise ValueError("layer: STDP needs a firing threshold; a decision layer learns by RSTDP")
        return StdpLayer(layer.threshold, layer.k, layer.radius, layer.pointwise, self.use_stabilizer,
                         self.lower_bound, self.upper_bound, self.flush_below)

    @torch.no_grad()
    def fit(self, input_times: torch.Tensor, epochs: int = 1, schedule: RateDoubling | None = None,
            mode: str = "exact", batch: int = 16, chunk: int | None = None, progress: bool = False,
            on_epoch=None, name: str = "STDP") -> list:
        r"""Train the layer on spike times, ``epochs`` passes in order, sample by sample.

        Per sample: potentials, fire, (point-wise inhibition), k-WTA and the update of the
        winners, with the layer's threshold, k, radius and padding and this rule; the next
        sample sees the updated weights (``mode="exact"``; ``"batched"``: mini-batches of
        ``batch`` samples share the batch-start weights, an option, not the published
        semantics). Rates: those of ``schedule`` (advanced in place, so it can be saved and
        resumed), else this learner's fixed ``(a_plus, a_minus)``.

        Args:
            input_times: the layer's input spike times, before its padding.
            epochs: passes over the samples.
            schedule: a :class:`~snnlab.learning.RateDoubling`, or ``None``.
            mode, batch, chunk: see :func:`snnlab.training.train_stdp`.
            progress: progress bars.
            on_epoch: called with each epoch's record after the epoch (e.g. to checkpoint).
            name: label of the progress bar.

        Returns:
            One record per epoch, a dict with ``epoch``, ``winners_per_sample``,
            ``mean_w_1_minus_w`` (:func:`snnlab.learning.convergence`), and ``a_plus``,
            ``a_minus`` (the last sample's rates).

        Shape:
            - input_times: :math:`(N, C, H, W)` uint8.
        """
        check_nonnegative_int(epochs, "epochs")
        spec = self.spec()
        if schedule is None and not bool((self.rates == self.rates[:1]).all()):
            raise ValueError("learning_rate: fit applies one (a_plus, a_minus) to all features; got per-feature rates")
        layer = self.layer
        x = pad_times(input_times, layer.padding, layer.time_steps)
        records = []
        for ep in range(epochs):
            n = len(x)
            rates = schedule.rates(n) if schedule is not None else self.rates[0].cpu().expand(n, 2)
            out = train_stdp(layer.weight.data, x, spec, rates, layer.time_steps, chunk, progress,
                             desc=f"{name} epoch {ep + 1}/{epochs}", mode=mode, batch=batch)
            rec = {"epoch": ep + 1, "winners_per_sample": float((out["winners"][:, :, 0] >= 0).sum(1).float().mean()),
                   "mean_w_1_minus_w": convergence(layer.weight), "a_plus": float(rates[-1, 0]),
                   "a_minus": float(rates[-1, 1])}
            records.append(rec)
            if on_epoch is not None:
                on_epoch(rec)
        return records


class RSTDP(nn.Module):
    r"""Reward-modulated STDP of a decision layer (Mozafari et al.).

    The layer has no threshold: the neuron with the largest potential wins, and the class of
    its feature (``decision_map``) is the decision. Right: STDP of the winner's kernel with the
    reward rates; wrong: with the punishment rates (anti-STDP); silent: nothing. On synapses
    whose input fired at all :math:`a^+`, else :math:`a^-`, optionally times the stabiliser;
    then clipped to ``[lower_bound, upper_bound]``. After each ``block`` of samples the rates
    adapt: reward scaled by the block's share of wrong decisions, punishment by its share of
    right ones (:func:`snnlab.learning.adaptive_rstdp_rates` with ``adaptive_min``,
    ``adaptive_scale``); the adapted rates are kept in ``current`` (save it to resume).

    Args:
        layer: a :class:`~snnlab.layers.SpikingConv` with ``threshold=None``.
        decision_map: ``(F,)`` the class of each feature.
        reward, punish: base ``(a_plus, a_minus)`` pairs.
        lower_bound, upper_bound: weight bounds.
        use_stabilizer: soft bounds.
        adaptive_min, adaptive_scale: floor and slope of the adaptive rates.
        block: samples per adaptation of the rates.
        mode: ``"exact"`` (sample by sample) or ``"batched"`` (chunks of 16 decided with the
            chunk-start weights).

    Shape:
        - inputs: :math:`(N, C, H, W)` 0/1 ("fired at all"), before the layer's padding;
          labels: :math:`(N,)`.

    Example (four features, two per class, all weights 0.8: ties go to the first feature, so
    class 0 decides until punishment weakens features 0 and 1):

        >>> conv3 = SpikingConv(1, 4, 1, weight_std=0.0)
        >>> learner = RSTDP(conv3, torch.tensor([0, 0, 1, 1]))
        >>> learner.epoch(torch.ones(3, 1, 1, 1), torch.tensor([0, 1, 1])).tolist()
        [0, 0, 0]
        >>> learner.decide(torch.ones(1, 1, 1, 1))[0].tolist()
        [1]
    """

    def __init__(self, layer, decision_map, reward=(0.004, -0.003), punish=(-0.004, 0.0005),
                 lower_bound: float = 0.2, upper_bound: float = 0.8, use_stabilizer: bool = False,
                 adaptive_min: float = 0.0, adaptive_scale: float = 1.0, block: int = 1000, mode: str = "exact"):
        super().__init__()
        layer = _spiking(layer)
        if layer.threshold is not None:
            raise ValueError(f"layer: R-STDP trains a decision layer (threshold None), got threshold {layer.threshold}")
        dmap = torch.as_tensor(decision_map, dtype=torch.long)
        if dmap.shape != (layer.weight.shape[0],):
            raise ValueError(f"decision_map: expected one class per feature, shape ({layer.weight.shape[0]},), "
                             f"got {tuple(dmap.shape)}")
        if not lower_bound < upper_bound:
            raise ValueError(f"lower_bound, upper_bound: expected lower < upper, got {lower_bound}, {upper_bound}")
        if mode not in ("exact", "batched"):
            raise ValueError(f"mode: expected 'exact' or 'batched', got {mode!r}")
        self.layer = layer
        self.register_buffer("decision_map", dmap)
        self.reward, self.punish = tuple(map(float, reward)), tuple(map(float, punish))
        self.lower_bound, self.upper_bound = float(lower_bound), float(upper_bound)
        self.use_stabilizer, self.mode = bool(use_stabilizer), mode
        self.adaptive = (float(adaptive_min), float(adaptive_scale))
        self.block = check_positive_int(block, "block")
        #: the adapted (reward, punishment) rates, starting from the base ones
        self.current = (self.reward, self.punish)

    def decide(self, inputs: torch.Tensor, batch_size: int | None = None):
        """``(decisions, winners)`` of binary inputs: int64 ``(N,)`` (-1 = silent) and ``(N, 3)``."""
        return decide(self.layer.weight, inputs, self.decision_map, self.layer.time_steps, batch_size,
                      padding=self.layer.padding)

    @torch.no_grad()
    def epoch(self, inputs: torch.Tensor, labels: torch.Tensor, order: torch.Tensor | None = None,
              active: torch.Tensor | None = None, progress: bool = False) -> torch.Tensor:
        """One pass of R-STDP over the samples (in ``order`` if given; features outside the bool
        mask ``active`` cannot win, as dropout does); returns the decisions, in that order."""
        n = len(inputs)
        if len(labels) != n:
            raise ValueError(f"labels: expected {n} labels, got {len(labels)}")
        rw, pn = self.current
        layer = self.layer
        out = []
        for a, b in chunks(n, self.block):
            idx = order[a:b] if order is not None else slice(a, b)
            y = labels[idx]
            d = train_rstdp(layer.weight.data, inputs[idx], y, self.decision_map, rw, pn, layer.time_steps,
                            self.lower_bound, self.upper_bound, mode=self.mode, progress=progress,
                            padding=layer.padding, active=active, stabilizer=self.use_stabilizer)
            right = float((d == y).double().mean())
            wrong = float(((d >= 0) & (d != y)).double().mean())
            rw, pn = adaptive_rstdp_rates(self.reward, self.punish, right, wrong, *self.adaptive)
            out.append(d)
        self.current = (rw, pn)
        return torch.cat(out) if out else torch.empty(0, dtype=torch.long)
