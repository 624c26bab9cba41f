"""LIF simulator: analytic rate, rheobase, refractoriness, integrators, batching, argument checks."""
import math

import pytest
import torch

from snnlab.neurons import (LIFParams, SynapseParams, lif_isi, lif_rate, lif_simulate, lif_step, rheobase,
                            synaptic_kernel, synaptic_trace)

P = LIFParams()


def first_isi(spikes_row, dt):
    t = spikes_row.nonzero().flatten().double() * dt
    return float((t[-1] - t[0]) / (len(t) - 1))


@pytest.mark.parametrize("method", ["euler", "rk2"])
def test_rate_matches_analytic_formula(method):
    currents = torch.tensor([[2800.0, 4000.0, 8000.0, 15000.0, 28506.0]], dtype=torch.float64)
    s = lif_simulate(currents, 5000, P, method)
    analytic = lif_isi(currents[0], P)
    for n in range(currents.shape[1]):
        sim = first_isi(s[0, n], P.dt)
        # The discrete threshold crossing rounds each interval up to the next step.
        assert abs(sim - float(analytic[n])) <= 1.5 * P.dt, (n, sim, float(analytic[n]))
    # Closed form, computed by hand: tau_m ln(V_inf - EL)/(V_inf - VT) + t_ref.
    v_inf = P.EL + 8000.0 / P.gL
    assert math.isclose(float(analytic[2]), 3.0 + 10.0 * math.log((v_inf - P.EL) / (v_inf - P.VT)))
    assert math.isclose(float(lif_rate(8000.0, P)), 1000.0 / float(analytic[2]))


def test_rheobase_current_never_fires():
    assert rheobase(P) == pytest.approx(2700.0)
    s, v = lif_simulate(torch.tensor([[2700.0, 2699.0]]), 3000, P, return_voltage=True)
    assert int(s.sum()) == 0
    assert float(v.max()) < P.VT
    assert float(lif_rate(2700.0, P)) == 0.0
    assert int(lif_simulate(torch.tensor([[2760.0]]), 3000, P).sum()) > 0


def test_refractory_period_respected():
    s, v = lif_simulate(torch.tensor([[1e7]]), 400, P, return_voltage=True)
    t = s[0, 0].nonzero().flatten()
    assert len(t) > 5
    assert int(t.diff().min()) == P.ref_steps + 1  # 3 ms held at reset, crossing on the next step
    for k in t[:-1].tolist():
        assert torch.all(v[0, 0, k:k + P.ref_steps + 1] == P.EL)


def test_euler_and_rk2_agree_for_small_dt():
    p = LIFParams(dt=0.01)
    cur = torch.linspace(3000.0, 20000.0, 8, dtype=torch.float64)[None]
    se = lif_simulate(cur, 10000, p, "euler")
    sr = lif_simulate(cur, 10000, p, "rk2")
    assert torch.equal(se.sum(-1), sr.sum(-1))
    te = [r.nonzero().flatten() for r in se[0]]
    tr = [r.nonzero().flatten() for r in sr[0]]
    for a, b in zip(te, tr):
        assert abs(int(a[0]) - int(b[0])) <= 2  # first spikes within 0.02 ms
        isi_e, isi_r = a.diff().double().mean(), b.diff().double().mean()
        assert abs(isi_e - isi_r) / isi_r < 5e-3


def test_batched_equals_looped_and_callable_equals_tensor():
    g = torch.Generator().manual_seed(0)
    cur = 2000.0 + 20000.0 * torch.rand(3, 5, 200, generator=g)
    batched = lif_simulate(cur, method="rk2")
    looped = torch.stack([lif_simulate(cur[b:b + 1])[0] for b in range(3)])
    assert torch.equal(batched, looped)
    per_neuron = torch.stack([lif_simulate(cur[:, n:n + 1])[:, 0] for n in range(5)], 1)
    assert torch.equal(batched, per_neuron)
    assert torch.equal(lif_simulate(lambda t: cur[:, :, t], 200), batched)
    s, v = lif_simulate(cur, return_voltage=True)
    assert s.dtype == torch.bool and s.shape == v.shape == (3, 5, 200)


def test_lif_step_holds_refractory_neurons():
    v = torch.tensor([0.0, 0.0])
    ref = torch.tensor([2, 0])
    s, v2, r2 = lif_step(v, ref, torch.tensor([1e5, 0.0]), P, "euler")
    assert v2[0] == P.EL and r2.tolist() == [1, 0] and not s.any()


def test_bad_input_raises_naming_argument():
    with pytest.raises(TypeError, match="current"):
        lif_simulate([[1.0]], 10)
    with pytest.raises(TypeError, match="current"):
        lif_simulate(torch.ones(1, 2, dtype=torch.long), 10)
    with pytest.raises(ValueError, match="current"):
        lif_simulate(torch.ones(2), 10)
    with pytest.raises(ValueError, match="current"):
        lif_simulate(torch.tensor([[float("nan")]]), 10)
    with pytest.raises(ValueError, match="n_steps"):
        lif_simulate(torch.ones(1, 2))
    with pytest.raises(ValueError, match="n_steps"):
        lif_simulate(torch.ones(1, 2, 5), 6)
    with pytest.raises(TypeError, match="n_steps"):
        lif_simulate(torch.ones(1, 2), 2.5)
    with pytest.raises(ValueError, match="method"):
        lif_simulate(torch.ones(1, 2), 5, method="rk4")
    with pytest.raises(ValueError, match="v0"):
        lif_simulate(torch.ones(1, 2), 5, v0=torch.zeros(1, 3))
    with pytest.raises(TypeError, match="params"):
        lif_simulate(torch.ones(1, 2), 5, params={"C": 1})
    with pytest.raises(ValueError, match="gL"):
        LIFParams(gL=0.0)
    with pytest.raises(ValueError, match="VT"):
        LIFParams(VT=-80.0)
    with pytest.raises(ValueError, match="t_ref"):
        LIFParams(t_ref=-1.0)


def test_synaptic_trace_is_the_kernel_convolved_with_the_spikes():
    p = SynapseParams(tau=3.0, tau_s=0.5, dt=0.2)
    s = (torch.rand(3, 2, 80, generator=torch.Generator().manual_seed(0)) < 0.1)
    k = synaptic_kernel(80, p)
    ref = torch.stack([(s[..., :t + 1].double() * k[:t + 1].flip(0)).sum(-1) for t in range(80)], -1)
    assert torch.allclose(synaptic_trace(s, p).double(), ref, atol=1e-5)
    assert p.decays == (math.exp(-0.2 / 3.0), math.exp(-0.2 / 0.5))


def test_bad_synapse_arguments_raise_naming_argument():
    with pytest.raises(ValueError, match="tau_s: expected < tau"):
        SynapseParams(tau=1.0, tau_s=2.0)
    with pytest.raises(ValueError, match="dt"):
        SynapseParams(dt=0.0)
    with pytest.raises(TypeError, match="n_steps"):
        synaptic_kernel(10.0)
    with pytest.raises(TypeError, match="params"):
        synaptic_kernel(10, {"tau": 5.0})
    with pytest.raises(TypeError, match="spikes"):
        synaptic_trace([[1, 0]])
