"""Step-by-step agreement with the reference library (SpykeTorch) on real MNIST images.

Uses ``../shared/reference/spyketorch_steps.pt`` (see its README); skips when absent.
"""
from pathlib import Path

import pytest
import torch

from snnlab.coding import Encoder, times_to_wave
from snnlab.competition import k_winners, pointwise_inhibition
from snnlab.layers import conv_potentials, fire
from snnlab.learning import apply_stdp, spike_times_of, stdp_pairing, stdp_rates_for_winners
from snnlab.training import StdpLayer, train_stdp

REF = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "spyketorch_steps.pt"
pytestmark = pytest.mark.skipif(not REF.is_file(), reason=f"reference steps not found at {REF} "
                                "(they ship in ../shared beside a developer checkout)")


@pytest.fixture(scope="module")
def ref():
    return torch.load(REF, weights_only=True)


@pytest.mark.parametrize("key, encoder", [("mz_times", Encoder.mozafari2019), ("kh_times", Encoder.kheradpisheh2018)])
def test_encoding_matches_reference_exactly(ref, key, encoder):
    enc = encoder()
    assert torch.equal(enc.encode_batch(ref["images"]), ref[key])       # batched
    assert torch.equal(enc(ref["images"][7]), ref[key][7])              # as a transform


def _layer_step(layer, params, w, step):
    wave = times_to_wave(step["input_times"], 15)
    pot = conv_potentials(wave, w)
    if layer == "mz3":
        spk, _ = fire(pot, None)
        winners = k_winners(pot, 1, 0, spk)
    else:
        spk, pot = fire(pot, float(params["threshold"]))
        pot = pointwise_inhibition(pot)
        spk = pot.sign()
        winners = k_winners(pot, params["k"], params["radius"], spk)
    return spk, winners[winners[:, 0] >= 0]


@pytest.mark.parametrize("layer", ["mz1", "mz2", "mz3", "kh1", "kh2"])
def test_layer_steps_match_reference(ref, layer):
    params = ref["params"][layer]
    w = ref["steps"][layer][0]["w_before"].clone()
    for step in ref["steps"][layer]:
        spk, winners = _layer_step(layer, params, w, step)
        assert int(spk[-1].sum()) == step["spikes_after_inhibition"]
        assert torch.equal(winners, step["winners"]), f"{layer} step {step['index']}"
        if layer == "mz3":
            decision = int(winners[0, 0]) // 20 if len(winners) else -1
            assert decision == step["decision"]
            assert (decision == int(ref["labels"][step["index"]])) == step["rewarded"]
            rates = torch.tensor([params["reward"] if step["rewarded"] else params["punish"]] * 200)
            stab, (lb, ub) = False, params["bounds"]
        else:
            rates = torch.tensor([[0.004, -0.003]] * w.shape[0])
            stab, lb, ub = True, 0.0, 1.0
        pair = stdp_pairing(step["input_times"][None], spike_times_of(spk[None]), winners[None], w.shape[-2:])
        lr = stdp_rates_for_winners(pair, winners[None], rates.float())
        mine = apply_stdp(w.clone(), winners, lr[0], stab, lb, ub)
        expected = w.clone()
        expected[step["changed"]] = step["w_changed"]
        changed = (mine != w).flatten(1).any(1).nonzero().flatten()
        assert torch.equal(changed, step["changed"])
        assert torch.allclose(mine, expected, atol=1e-6, rtol=0)
        w = expected  # continue from the recorded kernels so one difference does not cascade


@pytest.mark.parametrize("layer", ["mz1", "mz2", "kh1", "kh2"])
def test_fast_stdp_trainer_follows_reference_over_consecutive_steps(ref, layer):
    """The training loop of the reproductions (sparse competition, winner-row updates) run
    over the 20 consecutive recorded samples in one call, from the recorded first kernels."""
    params, steps = ref["params"][layer], ref["steps"][layer]
    w = steps[0]["w_before"].clone()
    expected = w.clone()
    spec = StdpLayer(float(params["threshold"]), int(params["k"]), int(params["radius"]))
    inputs = torch.stack([step["input_times"] for step in steps])
    out = train_stdp(w, inputs, spec, torch.tensor([[0.004, -0.003]]).expand(len(steps), 2), 15)
    for i, step in enumerate(steps):
        winners = out["winners"][i]
        assert torch.equal(winners[winners[:, 0] >= 0], step["winners"]), f"{layer} step {step['index']}"
        assert int(out["spikes"][i]) == step["spikes_after_inhibition"]
        expected[step["changed"]] = step["w_changed"]
    assert torch.allclose(w, expected, atol=1e-6, rtol=0)
