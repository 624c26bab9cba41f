"""Leaky integrate-and-fire (LIF) neurons with an absolute threshold and a refractory period.

Membrane equation (units: ms, mV, pA, nS, pF, so that pF*mV/ms = nS*mV = pA)::

    C dV/dt = -gL (V - EL) + I(t);   V >= VT  ->  spike, V <- V_reset, held for t_ref

The simulator works on a batch of ``B`` samples with ``N`` neurons each and advances ``T``
steps of length ``dt`` with forward Euler or second-order Runge-Kutta (Heun). Spikes are
returned as a ``bool`` tensor of shape ``(B, N, T)`` (time last); membrane voltages are only
kept when asked for, because a float ``(B, N, T)`` tensor is what exhausts memory first.

Synapses turn spike trains into currents through a double-exponential kernel
(:class:`SynapseParams`, :func:`synaptic_kernel`, :func:`synaptic_trace`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ._checks import check_finite, check_positive_int, check_tensor

__all__ = ["LIFParams", "lif_step", "lif_simulate", "lif_rate", "lif_isi", "rheobase", "SynapseParams",
           "synaptic_kernel", "synaptic_trace"]

_METHODS = ("euler", "rk2")


@dataclass(frozen=True)
class LIFParams:
    """Constants of a LIF neuron (defaults: Kulkarni & Rajendran 2018).

    Math: ``C dV/dt = -gL (V - EL) + I``, spike when ``V >= VT``, reset to ``v_reset``.

    Args:
        C: membrane capacitance in pF.
        gL: leak conductance in nS (membrane time constant ``C / gL`` in ms).
        EL: resting (leak reversal) potential in mV.
        VT: absolute firing threshold in mV.
        v_reset: potential after a spike in mV; ``None`` means ``EL``.
        t_ref: refractory period in ms during which ``V`` is held at ``v_reset``.
        dt: integration step in ms.
        v_min: lower bound of ``V`` in mV (``None``: unbounded). Kulkarni & Rajendran's code
            clamps ``V`` at ``EL``, so inhibition cannot hyperpolarise a neuron below rest.

    Shape:
        - scalars only.

    Example:
        >>> p = LIFParams()
        >>> p.tau_m, p.ref_steps, round(rheobase(p), 1)
        (10.0, 30, 2700.0)
    """

    C: float = 300.0
    gL: float = 30.0
    EL: float = -70.0
    VT: float = 20.0
    v_reset: float | None = None
    t_ref: float = 3.0
    dt: float = 0.1
    v_min: float | None = None

    def __post_init__(self):
        for name in ("C", "gL", "dt"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
                raise ValueError(f"{name}: expected a positive number, got {v!r}")
        for name in ("EL", "VT"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ValueError(f"{name}: expected a finite number in mV, got {v!r}")
        if isinstance(self.t_ref, bool) or not isinstance(self.t_ref, (int, float)) or self.t_ref < 0:
            raise ValueError(f"t_ref: expected a number >= 0 (ms), got {self.t_ref!r}")
        if self.VT <= self.reset:
            raise ValueError(f"VT: expected a threshold above the reset potential {self.reset} mV, got {self.VT}")
        if self.v_min is not None and (isinstance(self.v_min, bool) or not isinstance(self.v_min, (int, float))
                                       or not self.v_min < self.VT):
            raise ValueError(f"v_min: expected None or a number below VT = {self.VT} mV, got {self.v_min!r}")

    @property
    def reset(self) -> float:
        """Reset potential in mV (``v_reset`` or ``EL``)."""
        return self.EL if self.v_reset is None else float(self.v_reset)

    @property
    def tau_m(self) -> float:
        """Membrane time constant ``C / gL`` in ms."""
        return self.C / self.gL

    @property
    def ref_steps(self) -> int:
        """Refractory period in whole steps, ``round(t_ref / dt)``."""
        return int(round(self.t_ref / self.dt))


def _params(params, kind=None):
    kind = LIFParams if kind is None else kind  # SynapseParams is defined below
    if params is None:
        return kind()
    if not isinstance(params, kind):
        raise TypeError(f"params: expected a {kind.__name__} or None, got {type(params).__name__}")
    return params


def rheobase(params: LIFParams | None = None) -> float:
    """Smallest constant current that ever reaches threshold from rest, in pA.

    Math: ``I_rh = gL (VT - EL)``.

    Args:
        params: neuron constants (default :class:`LIFParams`).

    Shape:
        - output: a Python float.

    Example:
        >>> rheobase(LIFParams(gL=10.0, EL=-65.0, VT=-50.0))
        150.0
    """
    p = _params(params)
    return p.gL * (p.VT - p.EL)


def lif_isi(current, params: LIFParams | None = None) -> torch.Tensor:
    """Analytic inter-spike interval in ms of a LIF neuron under constant current (continuous time).

    Math: ``ISI = t_ref + tau_m ln((V_inf - V_reset) / (V_inf - VT))`` with ``V_inf = EL + I/gL``;
    ``inf`` when ``V_inf <= VT`` (at or below rheobase).

    Args:
        current: constant input current in pA (tensor or number).
        params: neuron constants (default :class:`LIFParams`).

    Shape:
        - current: any shape :math:`(*)`; output: same shape, float64.

    Example:
        >>> [round(x, 3) for x in lif_isi(torch.tensor([1000.0, 2700.0 + 255 * 101.2])).tolist()]
        [inf, 3.995]
    """
    p = _params(params)
    if isinstance(current, (int, float)) and not isinstance(current, bool):
        current = torch.tensor(float(current))
    check_tensor(current, "current")
    i = current.double()
    v_inf = p.EL + i / p.gL
    above = v_inf > p.VT
    safe = torch.where(above, v_inf, torch.full_like(v_inf, p.VT + 1.0))
    t_up = p.tau_m * torch.log((safe - p.reset) / (safe - p.VT))
    return torch.where(above, p.t_ref + t_up, torch.full_like(t_up, math.inf))


def lif_rate(current, params: LIFParams | None = None) -> torch.Tensor:
    """Analytic firing rate in Hz of a LIF neuron driven by a constant current.

    Math: ``rate = 1000 / (t_ref + tau_m ln((V_inf - V_reset)/(V_inf - VT)))``, ``V_inf = EL + I/gL``.

    Args:
        current: constant current in pA (tensor or number).
        params: neuron constants (default :class:`LIFParams`).

    Shape:
        - current: :math:`(*)`; output: same shape, float64 (0 below rheobase).

    Example:
        >>> [round(r) for r in lif_rate(torch.tensor([0.0, 2700.0 + 255 * 101.2])).tolist()]
        [0, 250]
    """
    return 1000.0 / lif_isi(current, params)


def _check_method(method):
    if not isinstance(method, str) or method not in _METHODS:
        raise ValueError(f"method: expected one of {_METHODS}, got {method!r}")


def lif_step(v: torch.Tensor, ref: torch.Tensor, current: torch.Tensor,
             params: LIFParams | None = None, method: str = "rk2"):
    """Advance LIF neurons by one step of ``dt``; returns ``(spikes, v, ref)``.

    Math: ``V <- V + dt f(V)`` (Euler) or ``V <- V + dt/2 (f(V) + f(V + dt f(V)))`` (RK2),
    ``f(V) = (I - gL (V - EL)) / C``, with the current held constant over the step.

    Neurons with ``ref > 0`` are held at the reset potential and their counter is decremented;
    a neuron reaching ``VT`` spikes, is reset and gets ``ref = ref_steps``, so spike-to-spike
    intervals are at least ``ref_steps + 1`` steps. No argument checks (hot loop): use
    :func:`lif_simulate` for checked input.

    Args:
        v: membrane potentials in mV.
        ref: remaining refractory steps (integer tensor).
        current: input current in pA for this step.
        params: neuron constants (default :class:`LIFParams`).
        method: ``"euler"`` or ``"rk2"``.

    Shape:
        - v, ref, current: the same shape :math:`(*)`; outputs: that shape (spikes ``bool``).

    Example:
        >>> v, ref = torch.tensor([19.9]), torch.tensor([0])
        >>> s, v, ref = lif_step(v, ref, torch.tensor([5000.0]))
        >>> s.tolist(), v.tolist(), ref.tolist()
        ([True], [-70.0], [30])
    """
    p = _params(params)
    a = p.dt / p.C
    if method == "euler":
        dv = a * (current - p.gL * (v - p.EL))
    else:
        k1 = current - p.gL * (v - p.EL)
        k2 = current - p.gL * (v + a * k1 - p.EL)
        dv = 0.5 * a * (k1 + k2)
    active = ref <= 0
    v = torch.where(active, v + dv, torch.full_like(v, p.reset))
    if p.v_min is not None:
        v = v.clamp_min(p.v_min)
    ref = (ref - 1).clamp_(min=0)
    spikes = v >= p.VT
    v = torch.where(spikes, torch.full_like(v, p.reset), v)
    ref = torch.where(spikes, torch.full_like(ref, p.ref_steps), ref)
    return spikes, v, ref


def lif_simulate(current, n_steps: int | None = None, params: LIFParams | None = None,
                 method: str = "rk2", v0: torch.Tensor | None = None,
                 return_voltage: bool = False, progress: bool = False):
    """Simulate a batch of LIF neurons for ``T`` steps and return their spike trains.

    Math: ``C dV/dt = -gL (V - EL) + I(t)``; ``V >= VT`` -> spike, reset, ``t_ref`` refractory.

    Args:
        current: input in pA: a ``(B, N)`` tensor held constant for ``n_steps`` steps, a
            ``(B, N, T)`` tensor (one value per step), or a callable ``step -> (B, N)`` tensor
            (so that long time-varying inputs need not be stored).
        n_steps: number of steps ``T``; required for constant or callable current, must equal
            ``current.shape[-1]`` (or be ``None``) for a ``(B, N, T)`` tensor.
        params: neuron constants (default :class:`LIFParams`).
        method: ``"rk2"`` (Heun, the authors' choice) or ``"euler"``.
        v0: initial potentials ``(B, N)`` in mV; default ``EL``.
        return_voltage: also return the float voltage trace (costs ``4 B N T`` bytes).
        progress: show a tqdm bar over the steps.

    Returns:
        ``spikes`` (bool), or ``(spikes, voltages)`` when ``return_voltage``. Voltages are
        recorded after the reset, so a spike step shows ``V_reset``.

    Shape:
        - current: :math:`(B, N)`, :math:`(B, N, T)` or callable returning :math:`(B, N)`
        - spikes: :math:`(B, N, T)` bool (time is the last axis)
        - voltages: :math:`(B, N, T)` float, same dtype as the current

    Example:
        >>> s = lif_simulate(torch.tensor([[0.0, 2700.0 + 255 * 101.2]]), n_steps=1000)
        >>> s.shape, s.sum(-1).tolist()
        (torch.Size([1, 2, 1000]), [[0, 25]])
    """
    p = _params(params)
    _check_method(method)
    if not isinstance(return_voltage, bool):
        raise TypeError(f"return_voltage: expected a bool, got {return_voltage!r}")
    if callable(current) and not isinstance(current, torch.Tensor):
        if n_steps is None:
            raise ValueError("n_steps: required when current is a callable, got None")
        n_steps = check_positive_int(n_steps, "n_steps")
        get = current
        first = get(0)
        check_tensor(first, "current(0)", 2, floating=True)
        shape, like = first.shape, first
    else:
        check_tensor(current, "current", (2, 3), floating=True)
        check_finite(current, "current")
        if current.dim() == 3:
            if n_steps is not None and n_steps != current.shape[-1]:
                raise ValueError(
                    f"n_steps: expected None or current.shape[-1] = {current.shape[-1]}, got {n_steps}")
            n_steps = current.shape[-1]
            cur = current
            get = lambda t: cur[:, :, t]  # noqa: E731
        else:
            if n_steps is None:
                raise ValueError("n_steps: required for a constant (B, N) current, got None")
            n_steps = check_positive_int(n_steps, "n_steps")
            cur = current
            get = lambda t: cur  # noqa: E731
        shape, like = current.shape[:2], current
    if v0 is None:
        v = torch.full(shape, p.EL, dtype=like.dtype, device=like.device)
    else:
        check_tensor(v0, "v0", 2, floating=True)
        if v0.shape != shape:
            raise ValueError(f"v0: expected shape {tuple(shape)}, got {tuple(v0.shape)}")
        v = v0.to(dtype=like.dtype, device=like.device).clone()
    ref = torch.zeros(shape, dtype=torch.int32, device=like.device)
    spikes = torch.empty(*shape, n_steps, dtype=torch.bool, device=like.device)
    volts = torch.empty(*shape, n_steps, dtype=like.dtype, device=like.device) if return_voltage else None
    steps = range(n_steps)
    if progress:
        from tqdm.auto import tqdm
        steps = tqdm(steps, desc="LIF", leave=False)
    for t in steps:
        s, v, ref = lif_step(v, ref, get(t), p, method)
        spikes[..., t] = s
        if volts is not None:
            volts[..., t] = v
    return (spikes, volts) if return_voltage else spikes


@dataclass(frozen=True)
class SynapseParams:
    """Time constants of a double-exponential synapse (defaults: Kulkarni & Rajendran 2018).

    Math: ``k(t) = exp(-t / tau) - exp(-t / tau_s)`` (peak ~0.47 at 2.3 ms for the defaults).

    Args:
        tau: decay time constant in ms.
        tau_s: rise time constant in ms, below ``tau``.
        dt: sampling step in ms.

    Shape:
        - scalars only.

    Example:
        >>> [round(a, 4) for a in SynapseParams().decays]
        [0.9802, 0.9231]
    """

    tau: float = 5.0
    tau_s: float = 1.25
    dt: float = 0.1

    def __post_init__(self):
        for name in ("tau", "tau_s", "dt"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v < math.inf:
                raise ValueError(f"{name}: expected a positive number (ms), got {v!r}")
        if self.tau_s >= self.tau:
            raise ValueError(f"tau_s: expected < tau = {self.tau}, got {self.tau_s}")

    @property
    def decays(self) -> tuple:
        """Per-step decay factors ``(exp(-dt / tau), exp(-dt / tau_s))`` of the two exponentials."""
        return math.exp(-self.dt / self.tau), math.exp(-self.dt / self.tau_s)


def synaptic_kernel(n_steps: int, params: SynapseParams | None = None) -> torch.Tensor:
    """Double-exponential synaptic kernel sampled every ``dt``.

    Math: ``k(n) = exp(-n dt / tau) - exp(-n dt / tau_s)``, ``n = 0..T-1``.

    Args:
        n_steps: length ``T``.
        params: time constants (default :class:`SynapseParams`).

    Shape:
        - output: :math:`(T,)` float64.

    Example:
        >>> k = synaptic_kernel(1000)
        >>> float(k[0]), round(float(k.max()), 3), int(k.argmax())
        (0.0, 0.472, 23)
    """
    p = _params(params, SynapseParams)
    n = check_positive_int(n_steps, "n_steps")
    t = torch.arange(n, dtype=torch.float64) * p.dt
    return torch.exp(-t / p.tau) - torch.exp(-t / p.tau_s)


def synaptic_trace(spikes: torch.Tensor, params: SynapseParams | None = None) -> torch.Tensor:
    """Filter spike trains with the synaptic kernel (causal; a spike at step s adds ``k(t - s)``).

    Math: ``c(t) = sum_{s <= t} S(s) (exp(-(t-s) dt/tau) - exp(-(t-s) dt/tau_s))``, computed as
    the difference of two first-order filters ``x <- a x + S(t)`` (``a`` from
    :attr:`SynapseParams.decays`).

    Args:
        spikes: bool or float spike trains, time last.
        params: time constants (default :class:`SynapseParams`).

    Shape:
        - spikes: :math:`(*, T)`; output: :math:`(*, T)` float32.

    Example:
        >>> s = torch.zeros(1, 30); s[0, 0] = 1
        >>> torch.allclose(synaptic_trace(s)[0], synaptic_kernel(30).float())
        True
    """
    p = _params(params, SynapseParams)
    check_tensor(spikes, "spikes")
    a1, a2 = p.decays
    s = spikes.float()
    x1 = torch.zeros_like(s[..., 0])
    x2 = torch.zeros_like(x1)
    out = torch.empty_like(s)
    for t in range(s.shape[-1]):
        x1 = x1 * a1 + s[..., t]
        x2 = x2 * a2 + s[..., t]
        out[..., t] = x1 - x2
    return out
