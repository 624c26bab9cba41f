"""Models, training loops, results folders, persistence and the command line."""
import dataclasses
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from snnlab import _stdp_kernels, cli, io
from snnlab.competition import k_winners, pointwise_inhibition
from snnlab.data import data_root
from snnlab.layers import conv_potentials, fire
from snnlab.coding import times_to_wave
from snnlab.learning import apply_stdp, batch_stdp, rate_schedule, spike_times_of, stdp_pairing, stdp_rates_for_winners
from snnlab.models.kheradpisheh2018 import Kheradpisheh2018, Kheradpisheh2018Config
from snnlab.models.mozafari2019 import Mozafari2019, Mozafari2019Config
from snnlab.training import _compete_batch, _train_stdp_batched
from snnlab.competition import inhibit_times
from snnlab.layers import block_pool, layer_times, pool_times
from snnlab.training import StdpLayer, compete, decide, train_rstdp, train_stdp

HAVE_MNIST = (data_root() / "MNIST" / "raw").is_dir()
needs_mnist = pytest.mark.skipif(not HAVE_MNIST, reason="MNIST not staged in data/MNIST/raw")
g = torch.Generator().manual_seed(3)


def rand_times(n, c, h, w, t=15, p=0.25):
    times = torch.randint(0, t, (n, c, h, w), generator=g)
    return times.masked_fill(torch.rand(n, c, h, w, generator=g) > p, t).to(torch.uint8)


def plain_stdp_loop(w, tin, spec, rates, t, winners=None):
    """The straightforward one-sample-at-a-time loop (what the reference does)."""
    for i in range(len(tin)):
        wave = times_to_wave(tin[i], t)
        spk, pot = fire(conv_potentials(wave, w), spec.threshold)
        if spec.pointwise:
            pot = pointwise_inhibition(pot)
            spk = pot.sign()
        win = k_winners(pot, spec.k, spec.radius, spk)
        if winners is not None:
            winners.append(win)
        pair = stdp_pairing(tin[i:i + 1], spike_times_of(spk[None]), win[None], w.shape[-2:])
        lr = stdp_rates_for_winners(pair, win[None], rates[i].expand(w.shape[0], 2))
        apply_stdp(w, win, lr[0], spec.stabilizer, spec.lower, spec.upper, flush_below=spec.flush_below)
    return w


@pytest.mark.parametrize("chunk", [1, 5, 16])
def test_chunked_stdp_equals_plain_loop_bit_for_bit(chunk):
    tin = rand_times(40, 4, 10, 10)
    w0 = torch.empty(48, 4, 3, 3).normal_(0.8, 0.05, generator=g)  # 48 // (4k) = chunks of 4
    spec = StdpLayer(threshold=4.0, k=3, radius=0)
    rates, _ = rate_schedule(40, 0.05, every=10, a_minus=-0.04)
    ref = plain_stdp_loop(w0.clone(), tin, spec, rates, 15)
    mine = w0.clone()
    train_stdp(mine, tin, spec, rates, 15, chunk=chunk)
    assert torch.equal(mine, ref)


@pytest.mark.parametrize("compiled", [True, False])
@pytest.mark.parametrize("pointwise,radius,stabilizer", [(True, 0, True), (False, 1, True), (True, 2, False)])
def test_exact_stdp_compiled_and_torch_steps_equal_plain_loop(monkeypatch, compiled, pointwise, radius, stabilizer):
    # the per-sample steps after the convolution run compiled (numba) on CPU, else in torch:
    # both must give the plain loop's weights and winners bit for bit
    if compiled and not _stdp_kernels.available():
        pytest.skip("numba is not installed")
    if not compiled:
        monkeypatch.setattr(_stdp_kernels, "available", lambda: False)
    tin = rand_times(60, 4, 10, 10, p=0.4)
    w0 = torch.empty(12, 4, 3, 3).normal_(0.8, 0.05, generator=g)
    spec = StdpLayer(threshold=4.0, k=3, radius=radius, pointwise=pointwise, stabilizer=stabilizer)
    rates, _ = rate_schedule(60, 0.05, every=10, a_minus=-0.04)
    wins = []
    ref = plain_stdp_loop(w0.clone(), tin, spec, rates, 15, winners=wins)
    mine = w0.clone()
    out = train_stdp(mine, tin, spec, rates, 15, chunk=1)
    assert not torch.equal(ref, w0)  # it learned
    assert torch.equal(mine, ref)
    assert torch.equal(out["winners"], torch.stack(wins))


def plain_batched_stdp(w, tin, spec, rates, t, batch):
    """Batched STDP by the definition: winners of each sample under the batch-start weights,
    updates summed, applied once per batch."""
    for a in range(0, len(tin), batch):
        wins, lrs = [], []
        for i in range(a, min(a + batch, len(tin))):
            spk, pot = fire(conv_potentials(times_to_wave(tin[i], t), w), spec.threshold)
            if spec.pointwise:
                pot = pointwise_inhibition(pot)
                spk = pot.sign()
            win = k_winners(pot, spec.k, spec.radius, spk)
            pair = stdp_pairing(tin[i:i + 1], spike_times_of(spk[None]), win[None], w.shape[-2:])
            lrs.append(stdp_rates_for_winners(pair, win[None], rates[i].expand(w.shape[0], 2))[0])
            wins.append(win)
        batch_stdp(w, torch.stack(wins), torch.stack(lrs), spec.stabilizer, spec.lower, spec.upper,
                   flush_below=spec.flush_below)
    return w


@pytest.mark.parametrize("batch", [1, 7, 16])
def test_batched_stdp_equals_its_definition_and_batch_1_equals_exact(batch):
    tin = rand_times(40, 4, 10, 10)
    w0 = torch.empty(48, 4, 3, 3).normal_(0.8, 0.05, generator=g)
    w0[0, 0, 0, 0] = 1.2  # out of bounds at the start: the first update clips every kernel
    spec = StdpLayer(threshold=4.0, k=3, radius=0)
    rates, _ = rate_schedule(40, 0.05, every=10, a_minus=-0.04)
    mine = w0.clone()
    out = train_stdp(mine, tin, spec, rates, 15, mode="batched", batch=batch)
    assert torch.equal(mine, plain_batched_stdp(w0.clone(), tin, spec, rates, 15, batch))
    assert (out["winners"][:, :, 0] >= 0).sum(1).float().mean() > 1  # the layer learned from winners
    exact = train_stdp(w0.clone(), tin, spec, rates, 15)
    if batch == 1:
        assert torch.equal(mine, plain_stdp_loop(w0.clone(), tin, spec, rates, 15))
        assert torch.equal(out["winners"], exact["winners"])
    else:  # later samples see older weights: another (close) result
        assert not torch.equal(out["winners"], exact["winners"])
    with pytest.raises(ValueError, match="mode"):
        train_stdp(w0.clone(), tin, spec, rates, 15, mode="fast")
    with pytest.raises(ValueError, match="batch"):
        train_stdp(w0.clone(), tin, spec, rates, 15, mode="batched", batch=0)


def test_stdp_on_a_cropped_window_keeps_winner_positions():
    # input spikes in a different off-centre window per sample: the trainer convolves only the
    # box of neurons that can fire, so winners must be mapped back to map coordinates
    tin = torch.full((30, 3, 14, 14), 15, dtype=torch.uint8)
    for i in range(30):
        y, x = (i * 5) % 9, (i * 3) % 8
        tin[i, :, y:y + 5, x:x + 6] = rand_times(1, 3, 5, 6, p=0.6)[0]
    w0 = torch.empty(12, 3, 3, 3).normal_(0.8, 0.05, generator=g)
    spec = StdpLayer(threshold=5.0, k=2, radius=1)
    rates, _ = rate_schedule(30, 0.05, every=10, a_minus=-0.04)
    winners = []
    ref = plain_stdp_loop(w0.clone(), tin, spec, rates, 15, winners)
    mine = w0.clone()
    out = train_stdp(mine, tin, spec, rates, 15, chunk=1)
    assert torch.equal(out["winners"], torch.stack(winners))
    assert torch.equal(mine, ref)
    assert (out["winners"][:, 0, 1] > 2).any() and (out["winners"][:, 0, 2] > 2).any()


@pytest.mark.parametrize("pointwise", [True, False])
def test_sparse_competition_equals_full_competition_with_ties(pointwise):
    # weights on a coarse grid make many potentials (and k-WTA keys) exactly equal, so the
    # tie-breaking order of fire -> point-wise inhibition -> k-WTA is exercised
    spec = StdpLayer(threshold=2.0, k=4, radius=1, pointwise=pointwise)
    for _ in range(30):
        tin = rand_times(1, 3, 9, 9, p=0.4)[0]
        w = torch.randint(0, 5, (6, 3, 3, 3), generator=g).float() / 4
        pot = conv_potentials(times_to_wave(tin, 15), w)
        spk, ref_pot = fire(pot, spec.threshold)
        if pointwise:
            ref_pot = pointwise_inhibition(ref_pot)
            spk = ref_pot.sign()
        ref_win = k_winners(ref_pot, spec.k, spec.radius, spk)
        win, out_t, n = compete(pot, spec, 15)
        assert torch.equal(win, ref_win)
        assert torch.equal(out_t, spike_times_of(spk[None])[0])
        assert n == int(spk[-1].sum())


@pytest.mark.parametrize("pointwise,radius", [(True, 1), (False, 0), (True, 0)])
def test_device_batch_competition_equals_per_sample_competition_with_ties(pointwise, radius):
    # the batched mode's accelerator path ranks a whole mini-batch at once, on tie-rich potentials
    spec = StdpLayer(threshold=2.0, k=7, radius=radius, pointwise=pointwise)
    tin = rand_times(12, 3, 9, 9, p=0.4)
    w = torch.randint(0, 5, (6, 3, 3, 3), generator=g).float() / 4
    pots = torch.stack([conv_potentials(times_to_wave(tin[i], 15), w) for i in range(12)])
    win, t_win, n_spk, out_t = _compete_batch(pots, spec, 15)
    for i in range(12):
        spk, ref_pot = fire(pots[i], spec.threshold)
        if pointwise:
            ref_pot = pointwise_inhibition(ref_pot)
            spk = ref_pot.sign()
        ref_win = k_winners(ref_pot, spec.k, spec.radius, spk)
        ref_t = spike_times_of(spk[None])[0]
        assert torch.equal(win[i], ref_win)
        assert torch.equal(out_t[i], ref_t.long())
        assert int(n_spk[i]) == int(spk[-1].sum())
        valid = ref_win[:, 0] >= 0
        assert torch.equal(t_win[i][valid], ref_t[tuple(ref_win[valid].T)].long())
        assert bool((t_win[i][~valid] == 15).all())
    assert bool((win[:, :, 0] < 0).any()) and bool((win[:, :, 0] >= 0).any())  # both cases occurred


def test_batched_stdp_device_path_equals_host_path():
    tin = rand_times(37, 4, 10, 10)
    w0 = torch.empty(16, 4, 3, 3).normal_(0.8, 0.05, generator=g)
    spec = StdpLayer(threshold=4.0, k=3, radius=1)
    rates, _ = rate_schedule(37, 0.05, every=10, a_minus=-0.04)
    host, dense = w0.clone(), w0.clone()
    a = _train_stdp_batched(host, tin, spec, rates, 15, 8, False, "", dense=False)
    b = _train_stdp_batched(dense, tin, spec, rates, 15, 8, False, "", dense=True)
    assert torch.equal(a["winners"], b["winners"]) and torch.equal(a["spikes"], b["spikes"])
    assert torch.equal(host, dense) and not torch.equal(host, w0)


def test_rstdp_exact_chunked_equals_plain_loop_and_final_slice_shortcut():
    x = (torch.rand(60, 8, 6, 6, generator=g) < 0.3).to(torch.uint8)
    y = torch.randint(0, 10, (60,), generator=g)
    dmap = torch.arange(20) // 2
    w0 = torch.empty(20, 8, 3, 3).normal_(0.8, 0.05, generator=g)
    # plain loop over the full time axis (the conv3 shortcut must not change anything)
    ref = w0.clone()
    for i in range(60):
        wave = times_to_wave(torch.where(x[i] > 0, 0, 15).to(torch.uint8), 15)
        pot = conv_potentials(wave, ref)
        spk, _ = fire(pot, None)
        win = k_winners(pot, 1, 0, spk)
        if win[0, 0] < 0:
            continue
        rates = (0.004, -0.003) if int(dmap[win[0, 0]]) == int(y[i]) else (-0.004, 0.0005)
        pair = stdp_pairing(torch.where(x[i] > 0, 0, 15)[None], spike_times_of(spk[None]), win[None], (3, 3))
        lr = stdp_rates_for_winners(pair, win[None], torch.tensor([rates] * 20))
        apply_stdp(ref, win, lr[0], False, 0.2, 0.8)
    for chunk in (1, 7):
        mine = w0.clone()
        train_rstdp(mine, x, y, dmap, (0.004, -0.003), (-0.004, 0.0005), 15, 0.2, 0.8, chunk=chunk)
        assert torch.equal(mine, ref)


@pytest.mark.parametrize("variant", ["published", "dropout+stabilizer"])
@pytest.mark.parametrize("path", ["compiled", "host", "generic"])
def test_rstdp_paths_equal_the_plain_loop_with_padding(path, variant, monkeypatch):
    # the three exact paths (compiled loop, numpy host loop, torch loop) against the plain
    # loop on zero-padded inputs; the first update clips every kernel, some samples are silent
    from snnlab import training
    from snnlab.learning import _stabilise

    gen = torch.Generator().manual_seed(5)
    x = (torch.rand(70, 20, 4, 4, generator=gen) < torch.linspace(0, 0.6, 70).view(70, 1, 1, 1)).to(torch.uint8)
    y = torch.randint(0, 10, (70,), generator=gen)
    dmap = torch.arange(30) // 3
    w0 = torch.empty(30, 20, 5, 5).normal_(0.8, 0.05, generator=gen)
    stab = variant != "published"
    active = torch.rand(30, generator=gen) > 0.4 if stab else None
    ref = w0.clone()
    ref_dec = torch.full((70,), -1)
    for i in range(70):
        xi = F.pad(x[i], (2, 2, 2, 2))
        pot = conv_potentials(times_to_wave(torch.where(xi > 0, 0, 15).to(torch.uint8), 15), ref)
        if active is not None:
            pot[:, ~active] = 0
        spk, _ = fire(pot, None)
        win = k_winners(pot, 1, 0, spk)
        if win[0, 0] < 0:
            continue
        ref_dec[i] = int(dmap[win[0, 0]])
        rates = (0.004, -0.003) if ref_dec[i] == int(y[i]) else (-0.004, 0.0005)
        lr = torch.where(xi[:, win[0, 1]:win[0, 1] + 5, win[0, 2]:win[0, 2] + 5] > 0, *rates)
        ref[win[0, 0]] += lr * _stabilise(ref[win[0, 0]], stab, 0.2, 0.8)
        ref.clamp_(0.2, 0.8)
    assert bool((ref_dec < 0).any()) and bool((ref_dec >= 0).any())
    recomputed = []
    if path == "compiled":
        assert training.binary_conv_agrees((30, 20, 5, 5), (20, 4, 4), 2) in (8, 16)
        from snnlab import _decision_kernels

        real = _decision_kernels.rstdp_chunk
        monkeypatch.setattr(_decision_kernels, "rstdp_chunk", lambda *a: recomputed.append(real(*a)) or recomputed[-1])
    else:
        monkeypatch.setattr(training, "_compiled_block", lambda *a: 0)
    if path == "generic":  # the accelerator path, run on the CPU
        w0 = w0.permute(3, 2, 1, 0).contiguous().permute(3, 2, 1, 0)  # not contiguous: the host loop declines it
        assert not w0.clone().is_contiguous()
    mine = w0.clone()
    dec = torch.cat([train_rstdp(mine, x[a:a + 25], y[a:a + 25], dmap, (0.004, -0.003), (-0.004, 0.0005), 15,
                                 0.2, 0.8, chunk=6, padding=2, active=active, stabilizer=stab) for a in (0, 25, 50)])
    assert torch.equal(dec, ref_dec) and torch.equal(mine, ref)
    if path == "compiled":  # stale potentials were both recomputed and provably left alone
        assert 0 < sum(recomputed) < sum(len(range(a, min(a + 6, 25))) for a in range(0, 25, 6)) * 3 * 30 * 16
    d, win = decide(mine, x, dmap, 15, padding=2)
    d_pad, win_pad = decide(mine, F.pad(x, (2, 2, 2, 2)), dmap, 15)
    assert torch.equal(d, d_pad) and torch.equal(win, win_pad)


def test_compiled_rstdp_falls_back_where_the_probe_disagrees(monkeypatch):
    from snnlab import _decision_kernels, training

    real = _decision_kernels.potentials
    monkeypatch.setattr(_decision_kernels, "potentials", lambda *a: np.nextafter(real(*a), np.float32(2)))
    training.binary_conv_agrees.cache_clear()
    try:
        with pytest.warns(RuntimeWarning, match="torch path"):
            assert training.binary_conv_agrees((6, 3, 3, 3), (3, 5, 5), 1) == 0
    finally:
        training.binary_conv_agrees.cache_clear()


def test_batched_rstdp_mode_runs_and_stays_in_bounds():
    x = (torch.rand(50, 8, 6, 6, generator=g) < 0.3).to(torch.uint8)
    y = torch.randint(0, 10, (50,), generator=g)
    w = torch.empty(20, 8, 3, 3).normal_(0.8, 0.05, generator=g)
    d = train_rstdp(w, x, y, torch.arange(20) // 2, (0.004, -0.003), (-0.004, 0.0005), 15, 0.2, 0.8,
                    mode="batched", chunk=10)
    assert d.shape == (50,) and bool(((w >= 0.2 - 1e-7) & (w <= 0.8 + 1e-7)).all())
    with pytest.raises(ValueError, match="mode"):
        train_rstdp(w, x, y, torch.arange(20) // 2, (1, 1), (1, 1), 15, 0.2, 0.8, mode="fast")


@pytest.mark.parametrize("dtype", [torch.float32, torch.uint8, torch.bool, torch.int16])
def test_block_pool_equals_max_pool2d(dtype):
    gen = torch.Generator().manual_seed(3)
    for k in (1, 2, 3):
        for p in range(k // 2 + 1):
            for h, w in ((3, 4), (5, 5), (8, 9), (13, 12), (14, 14)):
                x = torch.randint(0, 200, (2, 3, h, w), generator=gen)
                x = (x > 100) if dtype == torch.bool else x.to(dtype)
                got = block_pool(x, k, p)
                assert got.dtype == dtype
                assert torch.equal(got.float(), F.max_pool2d(x.float(), k, k, p)), (k, p, h, w)
                assert torch.equal(block_pool(x, k, p, "min").float(), -F.max_pool2d(-x.float(), k, k, p))
    with pytest.raises(ValueError, match="padding"):
        block_pool(torch.zeros(1, 4, 4), 2, 2)
    with pytest.raises(ValueError, match="mode"):
        block_pool(torch.zeros(1, 4, 4), 2, 0, "mean")
    with pytest.raises(ValueError, match="does not fit"):
        block_pool(torch.zeros(1, 2, 2), 3, 0)


def test_time_helpers_match_wave_operations():
    t = rand_times(3, 4, 8, 8)
    wave = times_to_wave(t, 15)
    from snnlab.layers import pooling
    assert torch.equal(times_to_wave(pool_times(t, 2, 2, 1), 15), pooling(wave, 2, 2, 1))
    inh = pointwise_inhibition(wave)
    assert torch.equal(times_to_wave(inhibit_times(t, 15), 15), inh)
    w = torch.rand(5, 4, 3, 3, generator=g)
    spk, _ = fire(conv_potentials(wave, w), 2.0)
    assert torch.equal(layer_times(t, w, 2.0, 15, batch_size=2), spike_times_of(spk).to(torch.uint8))
    # with point-wise inhibition: the reference order, inhibition of the thresholded potentials
    _, thresholded = fire(conv_potentials(wave, w), 2.0)
    inhibited = spike_times_of(pointwise_inhibition(thresholded).sign()).to(torch.uint8)
    got = layer_times(t, w, 2.0, 15, batch_size=2, pointwise=True)
    assert torch.equal(got, inhibited)
    assert ((got < 15).sum(1) <= 1).all() and (got < 15).sum() > 0
    with pytest.raises(ValueError, match="pointwise: expected true or false"):
        layer_times(t, w, 2.0, 15, pointwise=1)


def _trained_like(net):
    # push weights towards 0/1 as trained kernels are, so that layers neither saturate nor go silent
    for conv in (net.conv1, net.conv2):
        conv.weight.data = (torch.rand(conv.weight.shape, generator=g) < 0.5).float() * 0.95
    return net


@pytest.mark.parametrize("out_threshold,pointwise", [(None, False), (16.0, False), (None, True)])
def test_mozafari_final_slice_equals_full_computation(out_threshold, pointwise):
    cfg = Mozafari2019Config(conv2_output_threshold=out_threshold, conv1_pointwise=pointwise)
    net = _trained_like(Mozafari2019(cfg, seed=1))
    times = rand_times(6, 6, 28, 28, p=0.3)
    full = net.forward_full(times)
    assert torch.equal(net(times), full)
    assert bool((full >= 0).any())


def test_mozafari_conv1_pointwise_thins_conv2_input():
    net = _trained_like(Mozafari2019(Mozafari2019Config(), seed=1))
    times = rand_times(4, 6, 28, 28, p=0.3)
    free = net.conv2_input(times)
    net.config = Mozafari2019Config(conv1_pointwise=True)
    inhibited = net.conv2_input(times)
    # inhibition only removes spikes (a later pooled time or none), and removes some
    assert bool((inhibited >= free).all()) and int((inhibited < 15).sum()) < int((free < 15).sum())
    with pytest.raises(ValueError, match="conv1_pointwise"):
        Mozafari2019Config(conv1_pointwise="yes")


def test_mozafari_conv2_output_threshold_sparsifies_conv3_input():
    net = _trained_like(Mozafari2019(Mozafari2019Config(), seed=1))
    times = rand_times(6, 6, 28, 28, p=0.3)
    dense = net.conv3_input(times)
    net.config = Mozafari2019Config(conv2_output_threshold=130.0)
    sparse = net.conv3_input(times)
    assert bool((sparse <= dense).all()) and 0 < int(sparse.sum()) < int(dense.sum())
    assert Mozafari2019Config(conv2_output_threshold=12).frozen_conv2_threshold == 12.0
    assert Mozafari2019Config().frozen_conv2_threshold == 10.0


def test_kheradpisheh_final_slice_equals_full_computation():
    net = _trained_like(Kheradpisheh2018(seed=1))
    times = rand_times(5, 2, 28, 28, p=0.15)
    feats = net(times)
    assert feats.shape == (5, 12150)
    assert torch.equal(feats, net.forward_full(times))
    assert 0 < float(feats.float().mean()) < 1


def test_decide_silent_and_ties():
    w = torch.zeros(20, 1, 1, 1)
    x = torch.zeros(2, 1, 2, 2)
    x[1] = 1
    w[5] = 1.0
    w[7] = 1.0  # same potential: the lower index wins, as in the reference
    d, win = decide(w, x, torch.arange(20) // 2, 15)
    assert d.tolist() == [-1, 2] and win[1].tolist() == [5, 0, 0] and win[0].tolist() == [-1, -1, -1]


def test_config_validation_names_the_field():
    with pytest.raises(ValueError, match="epochs"):
        Mozafari2019Config(epochs=(1, -1, 2))
    with pytest.raises(ValueError, match="train_samples"):
        Kheradpisheh2018Config(train_samples=(0, 10))
    with pytest.raises(ValueError, match="rstdp_mode"):
        Mozafari2019Config(rstdp_mode="fast")
    for bad in (0, -1.0, "16", True):
        with pytest.raises(ValueError, match="conv2_output_threshold"):
            Mozafari2019Config(conv2_output_threshold=bad)


@pytest.mark.parametrize("cls, field, value, message", [
    (Mozafari2019Config, "kernels", [5, 3, 50], "conv3's kernel may be at most 7 wide"),
    (Mozafari2019Config, "kernels", [40, 3, 5], "do not fit 28x28 digits"),
    (Mozafari2019Config, "adaptive_block", 0, "adaptive_block: expected an int >= 1, got 0"),
    (Mozafari2019Config, "features", None, "features: expected a list of 3 values, got None"),
    (Mozafari2019Config, "test_samples", "100", "test_samples: expected an int in 1..10000, got '100'"),
    (Mozafari2019Config, "thresholds", [15, float("nan")], "thresholds[1]: expected a finite number >= 0"),
    (Mozafari2019Config, "rstdp_bounds", [0.8, 0.2], "lower < upper"),
    (Mozafari2019Config, "weight_std", float("inf"), "weight_std"),
    (Mozafari2019Config, "time_steps", 256, "time_steps: expected an int in 1..255"),
    (Mozafari2019Config, "chunk", 0, "chunk"),
    (Mozafari2019Config, "name", 3, "name"),
    (Kheradpisheh2018Config, "kernels", [5, 18], "conv2's kernel may be at most 17 wide"),
    (Kheradpisheh2018Config, "svm_val_fraction", "0.2", "svm_val_fraction"),
    (Kheradpisheh2018Config, "rate_doubling", [1, 0], "rate_doubling[0]: expected true or false"),
    (Kheradpisheh2018Config, "radius", [2, -1], "radius[1]: expected an int >= 0"),
    (Kheradpisheh2018Config, "svm_train_samples", None, "svm_train_samples"),
])
def test_every_config_field_is_checked_in_the_config(cls, field, value, message):
    # bad values fail when the config is made (one ValueError naming the field), never
    # later inside training; the command line's --set gets the same message
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("(", r"\(")):
        cls(**{field: value})


def test_model_save_load_and_text_tensor_roundtrip(tmp_path):
    net = Mozafari2019(Mozafari2019Config.quick(), seed=4)
    io.save_model(net, tmp_path / "net.pt")
    back = io.load_model(tmp_path / "net.pt")
    assert back.config == net.config
    for k, v in net.state_dict().items():
        assert torch.equal(v, back.state_dict()[k])
    w = net.conv1.weight.detach()
    io.save_tensor_text(w, tmp_path / "w.txt")
    first = (tmp_path / "w.txt").read_text().splitlines()[0]
    assert first == "30,6,5,5"
    assert torch.equal(io.load_tensor_text(tmp_path / "w.txt"), w)
    (tmp_path / "bad.txt").write_text("2,2\n1.0,2.0,3.0\n")
    with pytest.raises(ValueError, match="shape"):
        io.load_tensor_text(tmp_path / "bad.txt")
    with pytest.raises(FileNotFoundError, match="path"):
        io.load_model(tmp_path / "missing.pt")


TINY_MZ = dict(epochs=(1, 1, 2), train_samples=(60, 60, 300), test_samples=200, adaptive_block=100,
               validation_samples=300)


@needs_mnist
def test_mozafari_reproduce_writes_results_and_is_deterministic(tmp_path):
    from snnlab.models import mozafari2019 as mz

    cfg = mz.Mozafari2019Config(**TINY_MZ)
    r1 = mz.reproduce(cfg, tmp_path / "a", device="cpu", seed=2, progress=False, log=lambda m: None)
    r2 = mz.reproduce(cfg, tmp_path / "b", device="cpu", seed=2, progress=False, log=lambda m: None)
    saved = json.loads((tmp_path / "a" / "results.json").read_text())
    for key in ("config", "seed", "device", "torch", "history", "test_accuracy", "chosen_epoch", "chosen_by",
                "validation_accuracy", "final_test_accuracy", "wall_time_per_phase_s"):
        assert key in saved
    assert "best_test_accuracy" not in saved  # the test set chooses nothing
    hist = saved["history"]
    assert len(hist) == 2 and saved["validation_samples"] == 300
    assert set(hist[0]["test"]) == set(hist[0]["validation"]) == {"correct", "wrong", "silent"}
    # the chosen epoch is the last of the best validation scores, and its test score is reported
    val = [h["validation"]["correct"] for h in hist]
    assert saved["chosen_epoch"] == max(e for e, v in enumerate(val, 1) if v == max(val))
    assert saved["test_accuracy"] == 100 * hist[saved["chosen_epoch"] - 1]["test"]["correct"]
    assert saved["final_test_accuracy"] == 100 * hist[-1]["test"]["correct"]
    assert (tmp_path / "a" / "curves.png").stat().st_size > 1000
    assert r1["history"] == [dict(h, seconds=r1["history"][i]["seconds"]) for i, h in enumerate(r2["history"])]
    w1 = io.load_model(tmp_path / "a" / "weights.pt").state_dict()
    w2 = io.load_model(tmp_path / "b" / "weights.pt").state_dict()
    assert all(torch.equal(w1[k], w2[k]) for k in w1)


@needs_mnist
def test_mozafari_resume_after_interruption_gives_identical_weights(tmp_path, monkeypatch):
    from snnlab.models import mozafari2019 as mz
    from snnlab.runs import Run

    cfg = mz.Mozafari2019Config(**TINY_MZ)
    mz.reproduce(cfg, tmp_path / "full", device="cpu", seed=5, progress=False, log=lambda m: None)
    original = Run.save_checkpoint
    calls = {"n": 0}

    def crash_after_third(self, state):
        original(self, state)
        calls["n"] += 1
        if calls["n"] == 3:  # conv1, conv2 and the first conv3 epoch are saved
            raise KeyboardInterrupt

    monkeypatch.setattr(Run, "save_checkpoint", crash_after_third)
    with pytest.raises(KeyboardInterrupt):
        mz.reproduce(cfg, tmp_path / "cut", device="cpu", seed=5, progress=False, log=lambda m: None)
    monkeypatch.setattr(Run, "save_checkpoint", original)
    res = mz.reproduce(cfg, tmp_path / "cut", device="cpu", seed=5, resume=True, progress=False,
                       log=lambda m: None)
    full = io.load_model(tmp_path / "full" / "weights.pt").state_dict()
    cut = io.load_model(tmp_path / "cut" / "weights.pt").state_dict()
    assert all(torch.equal(full[k], cut[k]) for k in full)
    assert len(res["history"]) == 2


@needs_mnist
def test_mozafari_resume_with_more_rstdp_epochs_equals_the_longer_run(tmp_path, capsys):
    from snnlab.models import mozafari2019 as mz

    quiet = dict(device="cpu", seed=5, progress=False, log=lambda m: None)
    longer = mz.reproduce(mz.Mozafari2019Config(**TINY_MZ), tmp_path / "long", **quiet)
    short = dict(TINY_MZ, epochs=(1, 1, 1))
    mz.reproduce(mz.Mozafari2019Config(**short), tmp_path / "ext", **quiet)
    with pytest.raises(ValueError, match="layer 2 already trained for 1 epochs"):
        mz.reproduce(mz.Mozafari2019Config(**dict(TINY_MZ, epochs=(1, 2, 2))), tmp_path / "ext", resume=True, **quiet)
    with pytest.raises(ValueError, match="another config"):
        mz.reproduce(mz.Mozafari2019Config(**dict(short, test_samples=100)), tmp_path / "ext", resume=True, **quiet)
    with pytest.raises(SystemExit) as err:  # the CLI refuses before any work, in one line
        cli.main(["reproduce", "mozafari2019", "--out", str(tmp_path / "ext"), "--resume"])
    assert err.value.code == 2
    assert "another config" in capsys.readouterr().err
    extended = mz.reproduce(mz.Mozafari2019Config(**TINY_MZ), tmp_path / "ext", resume=True, **quiet)
    a = io.load_model(tmp_path / "long" / "weights.pt").state_dict()
    b = io.load_model(tmp_path / "ext" / "weights.pt").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    strip = lambda hist: [{k: v for k, v in h.items() if k != "seconds"} for h in hist]
    assert strip(extended["history"]) == strip(longer["history"]) and len(longer["history"]) == 2


@needs_mnist
def test_mozafari_rstdp_variants_branch_from_the_stdp_layers_checkpoint(tmp_path):
    # R-STDP-only fields may change on resume while conv3 has not started (one conv1/conv2
    # training serves several R-STDP variants), never after
    import shutil

    from snnlab.models import mozafari2019 as mz

    quiet = dict(device="cpu", seed=5, progress=False, log=lambda m: None)
    layers = dict(TINY_MZ, epochs=(1, 1, 0))
    mz.reproduce(mz.Mozafari2019Config(**layers), tmp_path / "l12", **quiet)
    variant = dict(TINY_MZ, rstdp_dropout=0.5, shuffle=True, adaptive_min=0.2, adaptive_scale=0.8,
                   rstdp_stabilizer=True)
    shutil.copytree(tmp_path / "l12", tmp_path / "v")
    branched = mz.reproduce(mz.Mozafari2019Config(**variant), tmp_path / "v", resume=True, **quiet)
    direct = mz.reproduce(mz.Mozafari2019Config(**variant), tmp_path / "d", **quiet)
    assert branched["history"] == [dict(h, seconds=branched["history"][i]["seconds"])
                                   for i, h in enumerate(direct["history"])]
    plain = mz.reproduce(mz.Mozafari2019Config(**TINY_MZ), tmp_path / "p", **quiet)
    assert [h["train"] for h in plain["history"]] != [h["train"] for h in direct["history"]]
    with pytest.raises(ValueError, match="rstdp_dropout"):
        mz.reproduce(mz.Mozafari2019Config(**dict(variant, rstdp_dropout=0.3)), tmp_path / "v", resume=True, **quiet)


@needs_mnist
def test_kheradpisheh_reproduce_tiny(tmp_path):
    from snnlab.models import kheradpisheh2018 as kh

    cfg = kh.Kheradpisheh2018Config(epochs=(1, 1), train_samples=(100, 100), svm_train_samples=500,
                                    test_samples=300)
    res = kh.reproduce(cfg, tmp_path, device="cpu", progress=False, log=lambda m: None)
    assert 30 < res["test_accuracy"] <= 100  # well above chance even after 100 samples
    assert res["test_samples"] == 300 and len(res["confusion"]) == 10
    assert (tmp_path / "weights.pt").is_file() and (tmp_path / "results.json").is_file()


@pytest.mark.parametrize("argv, message", [
    (["reproduce", "alexnet2012"], "unknown model"),
    (["reproduce", "mozafari2019", "--epochs", "1,-1,2"], "non-negative"),
    (["reproduce", "mozafari2019", "--epochs", "1,2"], "one per layer"),
    (["reproduce", "mozafari2019", "--out", "/proc/forbidden"], "cannot write"),
    (["reproduce", "mozafari2019", "--set", "colour=3"], "--set"),
])
def test_cli_bad_arguments_exit_2_with_one_line(argv, message, capsys):
    with pytest.raises(SystemExit) as err:
        cli.main(argv)
    assert err.value.code == 2
    msg = capsys.readouterr().err.strip()
    assert message in msg and "\n" not in msg


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_cli_cuda_without_cuda_exits_2(capsys, tmp_path):
    with pytest.raises(SystemExit) as err:
        cli.main(["reproduce", "mozafari2019", "--device", "cuda", "--out", str(tmp_path)])
    assert err.value.code == 2 and "CUDA is not available" in capsys.readouterr().err


@needs_mnist
def test_linear_svm_matches_sklearn_linearsvc():
    import numpy as np
    from sklearn.svm import LinearSVC

    from snnlab.data import load_mnist
    from snnlab.models.kheradpisheh2018 import LinearSVM

    x, y = load_mnist(train=False)
    xtr, ytr = (x[:1500].flatten(1) > 128).float(), y[:1500]
    xte, yte = (x[1500:2500].flatten(1) > 128).float(), y[1500:2500]
    # the reference: scikit-learn's primal solver on the dense matrix, to a tight tolerance
    ref = LinearSVC(C=0.01, dual=False, tol=1e-6, max_iter=2000).fit(xtr.numpy(), ytr.numpy())
    for mine in (LinearSVM(0.01).fit(xtr.to(torch.uint8), ytr),  # dual solver, classes in threads
                 LinearSVM(0.01, n_jobs=1, dual=False).fit(xtr.to(torch.uint8), ytr)):  # primal, one call
        assert mine.converged_
        pred = mine.predict(xte.to(torch.uint8)).numpy()
        assert (ref.predict(xte.numpy()) == pred).mean() > 0.995
        assert abs((ref.predict(xte.numpy()) == yte.numpy()).mean() - (pred == yte.numpy()).mean()) < 0.005
        # columns that never fire are dropped: their weights are 0 at the optimum
        dropped = np.setdiff1d(np.arange(xtr.shape[1]), mine.columns_)
        assert len(dropped) > 0 and np.abs(ref.coef_[:, dropped]).max() < 1e-6
        assert np.abs(ref.coef_[:, mine.columns_] - mine.coef_).max() < 0.02 * np.abs(ref.coef_).max()
        assert np.abs(ref.intercept_ - mine.intercept_).max() < 0.02 * np.abs(ref.intercept_).max()
    with pytest.warns(RuntimeWarning, match="max_iter=2"):
        assert not LinearSVM(2.4, max_iter=2).fit(xtr.to(torch.uint8), ytr).converged_


@needs_mnist
def test_svm_c_is_chosen_on_held_out_training_samples_only():
    from snnlab.data import load_mnist
    from snnlab.models.kheradpisheh2018 import LinearSVM, classify, select_svm_c

    x, y = load_mnist(train=False)
    f = (x[:1200].flatten(1) > 128).to(torch.uint8)
    best, val = select_svm_c(f, y[:1200], grid=(1e-4, 0.01, 2.4), val_fraction=0.25)
    assert list(val) == [1e-4, 0.01, 2.4] and best == max(val, key=val.get)
    # each score is a fit on the first 900 samples (started from the previous C's), scored on
    # the last 300: a fresh fit agrees to within one sample
    clf = LinearSVM(0.01).fit(f[:900], y[:900])
    assert val[0.01] == pytest.approx(100 * float((clf.predict(f[900:]) == y[900:1200]).double().mean()), abs=0.34)
    assert val[1e-4] < val[0.01]  # C = 1e-4 underfits 0/1 pixels badly
    # changing the test set cannot change the choice
    ft = (x[1200:1500].flatten(1) > 128).to(torch.uint8)
    a = classify(f, y[:1200], ft, y[1200:1500], c=None, grid=(1e-4, 0.01, 2.4), val_fraction=0.25)
    b = classify(f, y[:1200], ft, torch.zeros(300, dtype=torch.long), c=None, grid=(1e-4, 0.01, 2.4),
                 val_fraction=0.25)
    assert a["svm_c"] == b["svm_c"] == best and a["svm_validation"] == val
    assert classify(f, y[:1200], ft, y[1200:1500], c=2.4)["svm_validation"] == {}
    with pytest.raises(ValueError, match="val_fraction"):
        select_svm_c(f, y[:1200], val_fraction=1.0)
    with pytest.raises(ValueError, match="grid"):
        select_svm_c(f, y[:1200], grid=())
    with pytest.raises(ValueError, match="patience"):
        select_svm_c(f, y[:1200], patience=0)


@needs_mnist
@pytest.mark.parametrize("jobs", [1, 2])
def test_svm_c_walk_stops_after_falls_in_a_row(jobs):
    # (the fits are deterministic: each class has its own seeded sample order, whatever the threads)
    from snnlab.data import load_mnist
    from snnlab.svm import select_svm_c

    x, y = load_mnist(train=False)
    f = (x[:1200].flatten(1) > 128).to(torch.uint8)
    grid = (1e-4, 1e-3, 0.01, 0.1, 1.0, 10.0)
    _, full = select_svm_c(f, y[:1200], grid=grid, val_fraction=0.25, patience=None, n_jobs=jobs)
    assert list(full) == list(grid)
    best, walked = select_svm_c(f, y[:1200], grid=grid[::-1], val_fraction=0.25, patience=1, n_jobs=jobs)
    # the walk goes up from the smallest C and ends at the first fall, whatever n_jobs is
    n = next(i for i in range(1, len(grid)) if full[grid[i]] < full[grid[i - 1]]) + 1
    assert list(walked) == list(grid[:n]) and walked == {c: full[c] for c in grid[:n]}
    assert best == max(walked, key=walked.get)


def test_kheradpisheh_config_rejects_bad_svm_settings():
    from snnlab.models.kheradpisheh2018 import Kheradpisheh2018Config

    with pytest.raises(ValueError, match="svm_c"):
        Kheradpisheh2018Config(svm_c=-1.0)
    with pytest.raises(ValueError, match="svm_c_grid"):
        Kheradpisheh2018Config(svm_c_grid=(0.1, "big"))
    with pytest.raises(ValueError, match="svm_c_grid"):
        Kheradpisheh2018Config(svm_c_grid=())
    with pytest.raises(ValueError, match="svm_val_fraction"):
        Kheradpisheh2018Config(svm_val_fraction=0.0)


def test_resume_may_change_the_classifier_but_not_the_training():
    from snnlab.models.kheradpisheh2018 import Kheradpisheh2018Config
    from snnlab.runs import config_mismatch

    old = dataclasses.asdict(Kheradpisheh2018Config(svm_c=2.4))
    assert config_mismatch(old, 1, Kheradpisheh2018Config(), 1) == []
    assert config_mismatch(old, 1, Kheradpisheh2018Config(svm_c_grid=(1.0,), svm_val_fraction=0.5), 1) == []
    assert config_mismatch(old, 1, Kheradpisheh2018Config(thresholds=(9.0, 1.0)), 1) == ["thresholds"]


def test_linear_svm_rejects_bad_input():
    from snnlab.models.kheradpisheh2018 import LinearSVM

    with pytest.raises(ValueError, match="c: expected a positive"):
        LinearSVM(c=0)
    with pytest.raises(ValueError, match="x: expected a 2-D"):
        LinearSVM().fit(torch.zeros(4), torch.zeros(4))
    with pytest.raises(ValueError, match="y: expected shape"):
        LinearSVM().fit(torch.zeros(4, 2), torch.zeros(3))
    with pytest.raises(ValueError, match="at least 2 classes"):
        LinearSVM().fit(torch.ones(4, 2), torch.zeros(4))


def test_batched_map_splits_batches_that_do_not_fit():
    from snnlab._batching import batched_map

    calls = []

    def f(a, b):
        calls.append(b - a)
        if b - a > 3:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return list(range(a, b))

    out = batched_map(f, 10, 8)
    assert sum(out, []) == list(range(10))
    assert calls[:3] == [8, 4, 2] and max(len(o) for o in out) <= 3
    # host allocation failures are split too; other errors are not
    host = lambda a, b: (_ for _ in ()).throw(RuntimeError("DefaultCPUAllocator: can't allocate memory"))
    with pytest.raises(RuntimeError, match="can't allocate"):
        batched_map(host, 4, 4)  # still failing at one sample: re-raised
    with pytest.raises(RuntimeError, match="shape mismatch"):
        batched_map(lambda a, b: (_ for _ in ()).throw(RuntimeError("shape mismatch")), 4, 4)
    for bad in (0, -2, 1.5, True):
        with pytest.raises(ValueError, match="batch_size"):
            batched_map(f, 4, bad)


def test_inference_survives_out_of_memory_with_identical_results(monkeypatch):
    import torch.nn.functional as F

    net = _trained_like(Mozafari2019(Mozafari2019Config(), seed=1))
    kh = _trained_like(Kheradpisheh2018(seed=1))
    times, ktimes = rand_times(7, 6, 28, 28, p=0.3), rand_times(7, 2, 28, 28, p=0.15)
    want = net.conv3_input(times), net(times), kh(ktimes)
    conv2d = F.conv2d

    def small_memory(x, w, *args, **kw):
        if x.shape[0] > 2:
            raise torch.OutOfMemoryError("out of memory")
        return conv2d(x, w, *args, **kw)

    monkeypatch.setattr(F, "conv2d", small_memory)
    got = net.conv3_input(times, batch_size=512), net(times), kh(ktimes, batch_size=512)
    for w, g in zip(want, got):
        assert torch.equal(w, g)


def test_checkpoint_from_before_a_config_field_existed_still_resumes(tmp_path):
    import dataclasses

    from snnlab.runs import Run

    cfg = Mozafari2019Config.quick()
    old = dataclasses.asdict(cfg)
    del old["stdp_mode"], old["stdp_batch"]  # fields added later, with their defaults
    Run(tmp_path).save_checkpoint({"config": old, "seed": 0, "model": {}, "state": {"done": [1, 1, 2]}})
    Run(tmp_path, resume=True).check_resume(cfg, 0)  # the defaults are what the old run used
    with pytest.raises(ValueError, match="another config"):
        Run(tmp_path, resume=True).check_resume(Mozafari2019Config.quick(stdp_mode="batched"), 0)
    with pytest.raises(ValueError, match="stdp_batch"):
        Mozafari2019Config(stdp_batch=0)
    with pytest.raises(ValueError, match="stdp_mode"):
        Kheradpisheh2018Config(stdp_mode="fast")
