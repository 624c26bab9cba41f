"""Engine tests: hand-computed cases, properties, batched == looped, bad input."""
import pytest
import numpy as np
import torch

from snnlab.coding import Encoder, intensity_to_latency, times_to_wave, wave_to_times
from snnlab.competition import feature_inhibition, k_winners, pointwise_inhibition
from snnlab.layers import Convolution, conv_potentials, fire, pad, pooling, threshold
from snnlab.learners import STDP
from snnlab.learning import (
    RateDoubling, adaptive_rstdp_rates, apply_stdp, batch_stdp, convergence, rate_schedule,
    rstdp_select, spike_times_of, stdp_pairing, stdp_rates_for_winners,
)
from snnlab.retina import (
    FilterBank, dog_kernel, gabor_kernel, inhibition_kernel, lateral_intensity_inhibition,
    local_normalization,
)

g = torch.Generator().manual_seed(0)


def rand_times(b, c, h, w, t=15, p_spike=0.3):
    times = torch.randint(0, t, (b, c, h, w), generator=g)
    silent = torch.rand(b, c, h, w, generator=g) > p_spike
    return times.masked_fill(silent, t).to(torch.uint8)


def layer_outputs(b=4, c=3, f=6, size=12, k=3, thr=2.0, t=10):
    times = rand_times(b, c, size, size, t)
    wave = times_to_wave(times, t)
    w = torch.rand(f, c, k, k, generator=g)
    pot = conv_potentials(wave, w)
    spk, pot = fire(pot, thr)
    return times, wave, w, spk, pot


# ---------------------------------------------------------------- hand-computed cases
def test_figure1_spike_times_to_wave():
    # 3 features of 2x2, 4 time steps; 4 (= T) means never
    times = torch.tensor([[[0, 1], [4, 2]], [[3, 0], [1, 4]], [[2, 2], [0, 3]]], dtype=torch.uint8)
    wave = times_to_wave(times, 4)
    expected = torch.zeros(4, 3, 2, 2)
    for c in range(3):
        for y in range(2):
            for x in range(2):
                expected[int(times[c, y, x]):, c, y, x] = 1
    assert torch.equal(wave, expected)
    assert wave[:, 0, 0, 0].tolist() == [1, 1, 1, 1]
    assert wave[:, 0, 1, 0].tolist() == [0, 0, 0, 0]
    assert wave[:, 1, 0, 0].tolist() == [0, 0, 0, 1]


def test_figure2_convolution_of_cumulative_wave():
    # one 5x5 channel over 3 steps, 3x3 kernel of ones, computed by hand
    times = torch.full((1, 5, 5), 3, dtype=torch.uint8)
    times[0, 0, 0] = 0
    times[0, 2, 2] = 1
    times[0, 4, 4] = 2
    times[0, 1, 3] = 0
    wave = times_to_wave(times, 3)
    pot = conv_potentials(wave, torch.ones(1, 1, 3, 3))
    assert pot.shape == (3, 1, 3, 3)
    # t=0: spikes at (0,0),(1,3); t=1 adds (2,2); t=2 adds (4,4)
    t0 = torch.tensor([[1., 1, 1], [0, 1, 1], [0, 0, 0]])
    t1 = t0 + 1  # (2,2) lies in every 3x3 window
    t2 = t1.clone(); t2[2, 2] += 1
    assert torch.equal(pot[:, 0], torch.stack([t0, t1, t2]))
    spk, thr = fire(pot, 1.5)
    assert torch.equal(spk[0, 0], torch.zeros(3, 3))
    assert torch.equal(spk[1, 0], (t1 > 1.5).float())
    assert torch.equal(thr, pot * (pot > 1.5))


def test_dog_kernel_mean_zero_max_one_and_center_sign():
    on = dog_kernel(7, 1, 2)
    off = dog_kernel(7, 2, 1)
    for k in (on, off):
        assert abs(float(k.mean())) < 1e-6
        assert float(k.max()) == pytest.approx(1.0)
    assert on[3, 3] == on.max()            # ON-centre: the centre is the peak
    assert off[3, 3] < 0                    # OFF-centre: negative centre
    assert torch.allclose(on, on.T) and torch.allclose(on, on.flip(0))


def test_gabor_kernel_orientation():
    k0, k90 = gabor_kernel(9, 0), gabor_kernel(9, 90)
    assert abs(float(k0.mean())) < 1e-6 and float(k0.max()) == pytest.approx(1.0)
    assert torch.allclose(k0, k90.T, atol=1e-6)


def test_filter_bank_pads_smaller_kernels_and_thresholds():
    bank = FilterBank([dog_kernel(3, 0.5, 1.0), dog_kernel(7, 1, 2)], padding=3, threshold=50)
    assert bank.weight.shape == (2, 1, 7, 7)
    img = torch.zeros(2, 28, 28)
    img[:, 10:18, 10:18] = 255
    out = bank(img)
    assert out.shape == (2, 2, 28, 28)
    assert bool((out == 0).logical_or(out >= 50).all())
    assert out.sum() > 0
    assert torch.equal(bank(img[0]), out[0])


def test_local_normalization_is_scale_free():
    x = torch.rand(2, 3, 10, 10, generator=g) + 0.1
    a, b = local_normalization(x, 2), local_normalization(7 * x, 2)
    assert torch.allclose(a, b, rtol=1e-5)
    assert torch.allclose(local_normalization(torch.ones(1, 1, 9, 9), 1)[0, 0, 4, 4], torch.tensor(1.0))


def test_lateral_intensity_inhibition_reduces_weaker_neighbours_only():
    x = torch.zeros(1, 5, 5)
    x[0, 2, 2] = 10
    x[0, 2, 3] = 4
    x[0, 0, 0] = 4
    y = lateral_intensity_inhibition(x, inhibition_kernel([0.5, 0.25]))
    assert y[0, 2, 2] == 10            # strongest: untouched
    assert y[0, 2, 3] == pytest.approx(2.0)   # distance 1 from a stronger point
    assert y[0, 0, 0] == pytest.approx(3.0)   # distance 2
    assert bool((y <= x).all())


def test_intensity_to_latency_bins_and_ties():
    x = torch.tensor([[[5., 5., 3., 0.], [2., 1., 4., 6.]]])
    t = intensity_to_latency(x, 3)  # nnz = 7, bin size 2 -> 6 spike, weakest never
    # sorted (stable): 6, 5a, 5b, 4, 3, 2, 1
    assert t.tolist() == [[[0, 1, 2, 3], [2, 3, 1, 0]]]


def test_intensity_to_latency_packed_float32_path_equals_plain_sort():
    # float32 input sorts only the non-zero values (packed per row); float64 takes the plain
    # stable sort of whole rows: both must agree, ties, negatives, -0.0 and blank rows included
    gen = torch.Generator().manual_seed(3)
    x = torch.randint(0, 6, (6, 3, 5, 5), generator=gen).float()
    x[x == 1] = 0.0
    x[0, 0, :2] = -2.0
    x[1, 1, 1] = -0.0
    x[2] = 0.0
    x[3, :, :, 1:] = 0.0  # a sparse row: much shorter than the others once packed
    for t in (1, 4, 15):
        assert torch.equal(intensity_to_latency(x, t), intensity_to_latency(x.double(), t))


@pytest.mark.parametrize("time_steps", [1, 2, 7, 15, 30])
def test_intensity_to_latency_compiled_equals_torch_path(monkeypatch, time_steps):
    # the numba loop (CPU float32) against the packed torch sort, on encoded digits and on
    # random rows with ties, negatives, -0.0, blank and nearly blank samples
    from snnlab import _coding_kernels
    if not _coding_kernels.available():
        pytest.skip("numba not installed")
    gen = torch.Generator().manual_seed(5)
    digits = torch.zeros(4, 28, 28)
    digits[:, 8:20, 10:18] = torch.randint(0, 256, (4, 12, 8), generator=gen).float()
    rand = torch.randint(-3, 6, (150, 3, 5, 6), generator=gen).float()  # > 64 rows: split over threads
    rand[rand == 1] = 0.0
    rand[0], rand[1, :, :, 1:] = 0.0, 0.0
    rand[2, 0, 0, 0] = -0.0
    cases = [Encoder.mozafari2019().intensities(digits), rand]
    compiled = [intensity_to_latency(x, time_steps) for x in cases]
    monkeypatch.setattr(_coding_kernels, "available", lambda: False)
    for x, c in zip(cases, compiled):
        assert torch.equal(c, intensity_to_latency(x, time_steps))


def test_intensity_to_latency_few_nonzero_and_blank():
    x = torch.zeros(2, 1, 4, 4)
    x[0, 0, 0, 0], x[0, 0, 1, 1] = 2.0, 1.0
    t = intensity_to_latency(x, 5)
    assert t[0, 0, 0, 0] == 0 and t[0, 0, 1, 1] == 1
    assert int((t[0] < 5).sum()) == 2
    assert bool((t[1] == 5).all())  # blank sample never spikes
    assert times_to_wave(t[1], 5).sum() == 0


def _encoder_cases():
    gen = torch.Generator().manual_seed(11)
    digits = torch.zeros(150, 28, 28, dtype=torch.uint8)  # > 64 images: split over threads
    for i in range(150):
        y, x = torch.randint(0, 14, (2,), generator=gen).tolist()
        digits[i, y:y + 14, x:x + 10] = torch.randint(0, 256, (14, 10), generator=gen, dtype=torch.uint8)
    digits[0] = 0                # blank
    digits[1, 5, 5] = 255        # one bright pixel
    digits[2] = torch.randint(0, 256, (28, 28), generator=gen, dtype=torch.uint8)  # dense
    digits[3, :, :] = 0
    digits[3, :, 27] = 200       # a column at the border
    fractional = torch.rand(5, 20, 31, generator=gen) * 255
    custom = [Encoder([(5, 1, 2), (3, 2, 1)], padding=0, threshold=0.0, norm_radius=None, time_steps=4),
              Encoder([(5, 1, 2)], padding=2, threshold=3.5, norm_radius=0, time_steps=30),
              Encoder([(7, 2, 1), (3, 1, 2), (5, 1, 2)], padding=1, threshold=20.0, norm_radius=2, time_steps=1)]
    return ([(Encoder.mozafari2019(time_steps=t), digits) for t in (15, 30)]
            + [(Encoder.kheradpisheh2018(), digits)] + [(e, fractional) for e in custom])


def test_encoder_compiled_equals_torch_path(monkeypatch):
    # the one-pass numba encoder (filter bank, threshold, local normalisation, rank order)
    # against torch's convolutions and sort: the same spike times, exactly
    from snnlab import _coding_kernels, coding
    if not _coding_kernels.available():
        pytest.skip("numba not installed")
    cases = _encoder_cases()
    compiled = [enc._encode_compiled(x, keep_intensities=True) for enc, x in cases]
    for (enc, x), (c, values) in zip(cases, compiled):
        assert coding._compiled_agrees(enc, *x.shape[-2:])  # the probe lets the compiled path run
        assert torch.equal(enc.encode_batch(x), c)
        ref = enc.intensities(x)
        assert torch.equal(values.view(torch.int32), ref.view(torch.int32)), f"{enc.dogs}: other bits"
    grad = cases[2][1][:3].float().requires_grad_()  # no autograd error from the numpy hand-off
    assert torch.equal(cases[2][0].encode_batch(grad), compiled[2][0][:3])
    monkeypatch.setattr(_coding_kernels, "available", lambda: False)
    for (enc, x), (c, _) in zip(cases, compiled):
        t = enc.encode_batch(x)
        assert c.dtype == torch.uint8 and c.shape == t.shape
        assert torch.equal(c, t), f"{enc.dogs}: {int((c != t).sum())} spike times differ"
    assert int((compiled[0][0][2] < 15).sum()) > 100 and bool((compiled[0][0][0] == 15).all())


def test_encoder_falls_back_to_torch_where_the_compiled_bits_differ(monkeypatch):
    # a machine whose convolutions sum in another order: the probe sees other bits, warns
    # once, and the torch path encodes
    from snnlab import _coding_kernels, coding
    if not _coding_kernels.available():
        pytest.skip("numba not installed")
    encode = _coding_kernels.encode

    def off_by_one_ulp(imgs, *args):
        status = encode(imgs, *args)
        values = args[-1]
        if values.shape[0]:
            values.view(np.int32)[values > 0] += 1
        return status

    monkeypatch.setattr(_coding_kernels, "encode", off_by_one_ulp)
    coding._agrees.cache_clear()
    try:
        enc = Encoder.kheradpisheh2018()
        x = torch.randint(0, 256, (3, 28, 28), dtype=torch.uint8)
        with pytest.warns(RuntimeWarning, match="torch path"):
            t = enc.encode_batch(x)
        assert torch.equal(t, intensity_to_latency(enc.intensities(x), 15))
    finally:
        coding._agrees.cache_clear()


@pytest.mark.parametrize("compiled", [True, False])
def test_encoder_rejects_overflowing_images(monkeypatch, compiled):
    from snnlab import _coding_kernels
    if compiled and not _coding_kernels.available():
        pytest.skip("numba not installed")
    if not compiled:
        monkeypatch.setattr(_coding_kernels, "available", lambda: False)
    x = torch.zeros(2, 28, 28)
    x[1, 10:18, 10:18] = 3e38   # finite pixels far outside the grey levels
    with pytest.raises(ValueError, match="images: expected grey levels in 0..255, got values from 0 to 3e"):
        Encoder.kheradpisheh2018().encode_batch(x)
    with pytest.raises(ValueError, match="images: contains NaN"):
        Encoder.kheradpisheh2018().encode_batch(torch.full((1, 28, 28), float("nan")))


@pytest.mark.parametrize("compiled", [True, False])
def test_encoder_pixel_contract_grey_levels_0_to_255(monkeypatch, compiled):
    # [0, 1] floats (torchvision's ToTensor), bool masks, negative, > 255 and wrapped int8
    # pixels would encode to (almost) no spikes without a word: refused, saying how to convert
    from snnlab import _coding_kernels
    if compiled and not _coding_kernels.available():
        pytest.skip("numba not installed")
    if not compiled:
        monkeypatch.setattr(_coding_kernels, "available", lambda: False)
    enc = Encoder.kheradpisheh2018()
    x = torch.zeros(2, 28, 28, dtype=torch.uint8)
    x[:, 8:20, 10:18] = torch.randint(60, 256, (12, 8), generator=g, dtype=torch.uint8)
    x[0, 12, 12] = 255
    ref = enc.encode_batch(x)
    assert int((ref < 15).sum()) > 20
    for same in (x.float(), x.to(torch.int16), x.to(torch.int64)):  # grey levels in any dtype
        assert torch.equal(enc.encode_batch(same), ref)
    with pytest.raises(ValueError, match=r"ToTensor.*\(images \* 255\)"):
        enc.encode_batch(x.float() / 255)
    with pytest.raises(ValueError, match="ToTensor"):
        enc(x[0].float() / 255)  # the transform path too
    with pytest.raises(TypeError, match="bool tensor.*to\\(torch.uint8\\) \\* 255"):
        enc.encode_batch(x > 0)
    with pytest.raises(ValueError, match="from -1 to 254"):
        enc.encode_batch(x.float() - 1)  # 0 -> -1, max 254
    with pytest.raises(ValueError, match="to 300"):
        enc.encode_batch(torch.full((1, 28, 28), 300.0))
    with pytest.raises(ValueError, match="int8 holds 128..255 as negative"):
        enc.encode_batch(x.to(torch.int8))  # 200 wraps to -56
    assert bool((enc.encode_batch(torch.zeros(1, 28, 28)) == 15).all())  # a blank float image is fine


def test_nan_encoder_threshold_is_refused():
    with pytest.raises(ValueError, match="threshold: expected a finite number or None, got nan"):
        Encoder.kheradpisheh2018(threshold=float("nan"))
    with pytest.raises(ValueError, match="threshold"):
        FilterBank([dog_kernel(3, 1, 2)], threshold=float("inf"))


def test_k_winners_refuses_non_finite_potentials_and_negatives_never_win():
    v = torch.zeros(1, 2, 3, 3)
    v[0, 1, 1, 1] = 5.0
    for bad in (float("nan"), float("inf")):
        w = v.clone()
        w[0, 1, 0, 2] = bad
        with pytest.raises(ValueError, match="potentials: contains (NaN|infinite)"):
            k_winners(w, k=2)
    assert k_winners(-torch.rand(2, 2, 2, 3, 3) - 0.1, k=2).tolist() == [[[-1, -1, -1]] * 2] * 2
    mixed = v.clone()
    mixed[0, :, 0, 0] = -3.0
    assert k_winners(mixed, k=2).tolist() == [[1, 1, 1], [-1, -1, -1]]
    with pytest.raises(ValueError, match="spikes: expected a binary"):
        k_winners(v, 1, 0, v)


def test_convolution_refuses_nan_negative_or_graded_waves_and_bad_weight_draws():
    conv = Convolution(2, 3, 3, generator=torch.Generator().manual_seed(0))
    wave = (torch.rand(4, 2, 6, 6, generator=g) < 0.3).float()
    assert conv(wave).shape == (4, 3, 4, 4) and torch.equal(conv(wave.bool()), conv(wave))
    for bad, what in ((float("nan"), "NaN"), (-1.0, "negative"), (0.5, "graded")):
        w = wave.clone()
        w[1, 0, 2, 2] = bad
        with pytest.raises(ValueError, match="wave: expected a spike-wave of 0/1 values"):
            conv(w)
    with pytest.raises(ValueError, match="weight_mean: expected a finite number, got nan"):
        Convolution(2, 3, 3, weight_mean=float("nan"))
    with pytest.raises(ValueError, match="weight_std: expected a finite number >= 0, got inf"):
        Convolution(2, 3, 3, weight_std=float("inf"))
    with pytest.raises(ValueError, match="weight_std"):
        Convolution(2, 3, 3, weight_std=-0.1)


def test_encoder_blank_image_gives_silent_wave():
    enc = Encoder.kheradpisheh2018(output="wave")
    wave = enc(torch.zeros(28, 28, dtype=torch.uint8))
    assert wave.shape == (15, 2, 28, 28) and wave.sum() == 0


# ---------------------------------------------------------------- properties
def test_waves_are_monotone_and_roundtrip_exactly():
    times = rand_times(3, 4, 6, 6, t=9)
    wave = times_to_wave(times, 9)
    assert bool((wave[:, 1:] >= wave[:, :-1]).all())
    assert torch.equal(wave_to_times(wave), times)
    img = torch.randint(0, 256, (5, 28, 28), generator=g, dtype=torch.uint8)
    t = Encoder.mozafari2019().encode_batch(img)
    assert torch.equal(wave_to_times(times_to_wave(t, 15)), t)


def test_pooled_spike_is_earliest_in_window():
    times = rand_times(2, 3, 8, 8, t=7)
    pooled = wave_to_times(pooling(times_to_wave(times, 7), 2, 2))
    ref = -torch.nn.functional.max_pool2d(-times.float(), 2, 2)
    assert torch.equal(pooled.float(), ref)


def test_pointwise_inhibition_one_feature_per_location_and_earliest():
    times, wave, w, spk, pot = layer_outputs()
    inh = pointwise_inhibition(pot)
    fired = inh[:, -1] > 0
    assert int(fired.sum(1).max()) <= 1
    # where something fired, the survivor fired at the earliest step of that location
    t_all = spike_times_of(spk).amin(1)
    t_inh = spike_times_of(inh.sign()).amin(1)
    assert torch.equal(t_all, t_inh)
    assert bool((inh.sign() <= spk).all())


def test_pointwise_inhibition_prefers_potential_on_tie():
    v = torch.zeros(1, 2, 3, 1, 1)
    v[0, :, 0] = 5.0
    v[0, :, 1] = 7.0
    v[0, :, 2] = 6.0
    out = pointwise_inhibition(v)
    assert out[0, :, 1].sum() > 0 and out[0, :, 0].sum() == 0 and out[0, :, 2].sum() == 0


def test_k_winners_radius_changes_winners():
    v = torch.zeros(2, 3, 5, 5)
    v[1, 0, 2, 2] = 9.0   # earliest and strongest
    v[1, 1, 2, 3] = 8.0   # next, right beside it
    v[1, 2, 0, 0] = 7.0   # far away
    assert k_winners(v, 3, 0).tolist() == [[0, 2, 2], [1, 2, 3], [2, 0, 0]]
    assert k_winners(v, 3, 1).tolist() == [[0, 2, 2], [2, 0, 0], [-1, -1, -1]]


def test_k_winners_earliest_beats_stronger():
    v = torch.zeros(3, 2, 1, 2)
    v[1:, 0, 0, 0] = 1.0    # spikes at t=1 with a small potential
    v[2, 1, 0, 1] = 100.0   # spikes only at t=2 with a large one
    assert k_winners(v, 1).tolist() == [[0, 0, 0]]


def test_k_winners_one_per_feature_and_padding():
    times, wave, w, spk, pot = layer_outputs(b=6, f=4)
    win = k_winners(pot, 10, 0, spk)
    assert win.shape == (6, 10, 3)
    for b in range(6):
        feats = win[b, :, 0]
        valid = feats[feats >= 0]
        assert len(set(valid.tolist())) == len(valid)
        assert len(valid) <= 4 and bool((win[b, len(valid):] == -1).all())


def test_stdp_element_by_element():
    w = torch.full((2, 1, 2, 2), 0.5)
    w[1] = 0.25
    tin = torch.tensor([[[[0, 5], [2, 1]]]], dtype=torch.uint8)     # (1, 1, 2, 2)
    tout = torch.tensor([[[[1]], [[3]]]], dtype=torch.uint8)        # (1, 2, 1, 1)
    win = torch.tensor([[[1, 0, 0]]])
    pair = stdp_pairing(tin, tout, win, (2, 2))
    assert pair[0, 0, 0].tolist() == [[True, False], [True, True]]  # t_in <= 3
    rates = torch.tensor([[0.1, -0.2], [0.4, -0.3]])
    lr = stdp_rates_for_winners(pair, win, rates)
    new = apply_stdp(w.clone(), win[0], lr[0], use_stabilizer=True)
    s = 0.25 * 0.75
    assert torch.allclose(new[1, 0], torch.tensor([[0.25 + 0.4 * s, 0.25 - 0.3 * s],
                                                   [0.25 + 0.4 * s, 0.25 + 0.4 * s]]))
    assert torch.equal(new[0], w[0])
    nostab = apply_stdp(w.clone(), win[0], lr[0], use_stabilizer=False, lower=0.2, upper=0.6)
    assert torch.allclose(nostab[1, 0], torch.tensor([[0.6, 0.2], [0.6, 0.6]]))
    assert torch.equal(nostab[0], w[0])


def test_stdp_keeps_weights_in_bounds_and_flushes_subnormals():
    times, wave, w, spk, pot = layer_outputs(b=40)
    w = torch.rand_like(w)
    win = k_winners(pot, 3, 1, spk)
    rates = torch.tensor([[0.15, -0.9]]).expand(w.shape[0], 2)
    lr = stdp_rates_for_winners(stdp_pairing(times, spike_times_of(spk), win, (3, 3)), win, rates)
    for _ in range(30):
        for i in range(len(win)):
            apply_stdp(w, win[i], lr[i], True, 0.0, 1.0, flush_below=1e-30)
    assert float(w.min()) >= 0.0 and float(w.max()) <= 1.0
    tiny = (w != 0) & (w.abs() < torch.finfo(torch.float32).tiny)
    assert not bool(tiny.any())
    w2 = torch.rand_like(w) * 2 - 0.5
    apply_stdp(w2, win[0], lr[0], False, 0.2, 0.8)
    assert bool((w2 >= torch.tensor(0.2)).all()) and bool((w2 <= torch.tensor(0.8)).all())


def test_stdp_module_matches_functional():
    conv = Convolution(3, 6, 3, generator=torch.Generator().manual_seed(1))
    times, wave, _, _, _ = layer_outputs(b=3)
    pot = conv(wave)
    spk, pot = fire(pot, 2.0)
    win = k_winners(pot, 2, 1, spk)
    w_ref = conv.weight.detach().clone()
    lr = stdp_rates_for_winners(stdp_pairing(times, spike_times_of(spk), win, (3, 3)), win,
                                torch.tensor([[0.004, -0.003]]).expand(6, 2))
    for i in range(3):
        apply_stdp(w_ref, win[i], lr[i])
    STDP(conv, (0.004, -0.003))(wave, spk, win)
    assert torch.equal(conv.weight, w_ref)


def test_batch_stdp_sums_updates():
    w = torch.full((2, 1, 1, 1), 0.5)
    win = torch.tensor([[[0, 0, 0]], [[0, 0, 0]], [[-1, -1, -1]]])
    lr = torch.full((3, 1, 1, 1, 1), 0.1)
    summed = batch_stdp(w.clone(), win, lr, use_stabilizer=False)
    mean = batch_stdp(w.clone(), win, lr, use_stabilizer=False, reduce="mean")
    assert summed[0].item() == pytest.approx(0.7) and summed[1].item() == 0.5
    assert mean[0].item() == pytest.approx(0.6)


def test_rate_schedule_doubles_every_500_and_caps():
    r, c = rate_schedule(6000, 0.004, a_minus=-0.003)
    assert r[498, 0].item() == pytest.approx(0.004) and r[499, 0].item() == pytest.approx(0.008)
    assert r[499, 1].item() == pytest.approx(-0.006)
    assert r[-1, 0].item() == pytest.approx(0.15) and r[-1, 1].item() == pytest.approx(-0.1125)
    sched = RateDoubling(0.004, -0.003)
    seq = torch.tensor([sched.step() for _ in range(1200)], dtype=torch.float32)
    assert torch.equal(seq, r[:1200])
    r2, c2 = rate_schedule(700, 0.004, a_minus=-0.003)
    r3, _ = rate_schedule(500, float(r2[-1, 0]), counter=c2, a_minus=float(r2[-1, 1]))
    assert torch.equal(torch.cat([r2, r3]), rate_schedule(1200, 0.004, a_minus=-0.003)[0])


def test_adaptive_and_rstdp_selection():
    rw, pn = adaptive_rstdp_rates((0.004, -0.003), (-0.004, 0.0005), 0.9, 0.1)
    assert rw == pytest.approx((0.0004, -0.0003)) and pn == pytest.approx((-0.0036, 0.00045))
    sel = rstdp_select(torch.tensor([3, 4, -1]), torch.tensor([3, 3, 3]),
                       torch.tensor([[1.0, -1.0]] * 2), torch.tensor([[-2.0, 2.0]] * 2))
    assert sel[0, 1].tolist() == [1.0, -1.0] and sel[1, 0].tolist() == [-2.0, 2.0]
    assert sel[2].abs().sum() == 0
    with pytest.raises(ValueError, match="correct_fraction"):
        adaptive_rstdp_rates((1, 1), (1, 1), 1.5, 0.0)


def test_feature_inhibition_and_threshold_none():
    v = torch.rand(2, 4, 3, 2, 2, generator=g)
    out = feature_inhibition(v, [1])
    assert out[:, :, 1].abs().sum() == 0 and torch.equal(out[:, :, 0], v[:, :, 0])
    mask = torch.tensor([[True, False, False], [False, False, True]])
    per = feature_inhibition(v, mask)
    assert per[0, :, 0].sum() == 0 and per[1, :, 2].sum() == 0 and torch.equal(per[0, :, 2], v[0, :, 2])
    last = threshold(v, None)
    assert last[:, :-1].abs().sum() == 0 and torch.equal(last[:, -1], v[:, -1])


# ---------------------------------------------------------------- batched == looped
def test_batched_equals_looped_everywhere():
    img = torch.randint(0, 256, (4, 28, 28), generator=g, dtype=torch.uint8)
    img[2] = 0
    enc = Encoder.mozafari2019()
    t = enc.encode_batch(img)
    assert torch.equal(t, torch.stack([enc(img[i]) for i in range(4)]))
    times, wave, w, spk, pot = layer_outputs(b=5)
    pot_all = conv_potentials(wave, w)
    for i in range(5):
        assert torch.equal(conv_potentials(wave[i], w), pot_all[i])
        s1, p1 = fire(pot_all[i], 2.0)
        assert torch.equal(s1, spk[i]) and torch.equal(p1, pot[i])
        assert torch.equal(pointwise_inhibition(pot[i]), pointwise_inhibition(pot)[i])
        assert torch.equal(k_winners(pot[i], 4, 1, spk[i]), k_winners(pot, 4, 1, spk)[i])
        assert torch.equal(pooling(wave[i], 2, 2, 1), pooling(wave, 2, 2, 1)[i])
        assert torch.equal(intensity_to_latency(pot[i, -1], 7), intensity_to_latency(pot[:, -1], 7)[i])
    win = k_winners(pot, 3, 1, spk)
    st = spike_times_of(spk)
    pair = stdp_pairing(times, st, win, (3, 3))
    for i in range(5):
        assert torch.equal(stdp_pairing(times[i:i + 1], st[i:i + 1], win[i:i + 1], (3, 3))[0], pair[i])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available")
def test_cpu_equals_cuda():
    img = torch.randint(0, 256, (4, 28, 28), generator=g, dtype=torch.uint8)
    enc = Encoder.mozafari2019()
    assert torch.equal(enc.encode_batch(img), enc.to("cuda").encode_batch(img.cuda()).cpu())
    times, wave, w, spk, pot = layer_outputs(b=4)
    pc = conv_potentials(wave.cuda(), w.cuda())
    assert torch.allclose(pc.cpu(), conv_potentials(wave, w), atol=1e-5)
    sc, vc = fire(pot.cuda(), 2.0)
    assert torch.equal(k_winners(vc, 3, 1, sc).cpu(), k_winners(pot, 3, 1, spk))
    assert torch.equal(pointwise_inhibition(vc).cpu(), pointwise_inhibition(pot))


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize("call, arg", [
    (lambda: intensity_to_latency(torch.rand(28, 28), 15), "intensities"),
    (lambda: intensity_to_latency(torch.rand(1, 2, 4, 4), -1), "time_steps"),
    (lambda: intensity_to_latency(torch.full((1, 2, 2), float("nan")), 4), "intensities"),
    (lambda: times_to_wave(torch.zeros(2, 2, dtype=torch.uint8), 4), "times"),
    (lambda: times_to_wave(torch.zeros(1, 2, 2, dtype=torch.uint8), 0), "time_steps"),
    (lambda: conv_potentials(torch.ones(3, 1, 4, 4), torch.ones(1, 1, 5, 5)), "weight"),
    (lambda: conv_potentials(torch.ones(3, 2, 8, 8), torch.ones(1, 1, 3, 3)), "wave"),
    (lambda: fire(torch.ones(3, 3), 1.0), "potentials"),
    (lambda: fire(torch.ones(2, 1, 2, 2, dtype=torch.int64), 1.0), "potentials"),
    (lambda: pooling(torch.ones(2, 1, 3, 3), 5), "kernel_size"),
    (lambda: k_winners(torch.ones(2, 1, 2, 2), 0), "k"),
    (lambda: k_winners(torch.ones(2, 1, 2, 2), 1, -2), "radius"),
    (lambda: dog_kernel(6, 1, 2), "size"),
    (lambda: dog_kernel(7, -1, 2), "sigma1"),
    (lambda: FilterBank([dog_kernel(13, 1, 2)])(torch.zeros(1, 8, 8)), "images"),
    (lambda: local_normalization(torch.full((1, 2, 2), float("inf")), 1), "x"),
    (lambda: Encoder.kheradpisheh2018(norm_radius=-1), "norm_radius"),
    (lambda: wave_to_times(torch.tensor([1., 0.]).view(2, 1, 1, 1)), "wave"),
    (lambda: pad(torch.ones(2, 2), (1, 1)), "padding"),
    (lambda: Encoder.mozafari2019(output="spikes"), "output"),
])
def test_bad_input_raises_with_argument_name(call, arg):
    with pytest.raises((ValueError, TypeError), match=arg):
        call()


def test_wrong_type_raises_type_error():
    with pytest.raises(TypeError, match="intensities"):
        intensity_to_latency([[1.0]], 3)
    with pytest.raises(TypeError, match="threshold"):
        fire(torch.ones(2, 1, 2, 2), "10")


def test_numba_cache_goes_to_a_temporary_folder_where_none_is_writable(monkeypatch):
    # an unwritable HOME and package folder: numba finds no cache locator and would refuse
    # every cache=True loop at import; snnlab points its cache at a temporary folder instead
    import shutil

    numba = pytest.importorskip("numba")
    from numba.core import caching

    from snnlab import _numba

    for cls in (caching.InTreeCacheLocator, caching.UserWideCacheLocator):
        monkeypatch.setattr(cls, "from_function", classmethod(lambda cls, func, path: None))
    monkeypatch.setattr(numba.config, "CACHE_DIR", "")

    def twice(x):
        return 2 * x

    with pytest.raises(RuntimeError, match="no locator available"):
        numba.njit(cache=True)(twice)
    _numba._ensure_cache_dir()
    assert "snnlab-numba-" in numba.config.CACHE_DIR
    assert numba.njit(cache=True)(twice)(21) == 42
    shutil.rmtree(numba.config.CACHE_DIR)


def test_convergence_bounds():
    assert convergence(torch.tensor([0.0, 1.0])) == 0.0
    assert convergence(torch.full((3,), 0.5)) == 0.25
    assert convergence(torch.full((3,), 1.0), lower=-1.0, upper=3.0) == 4.0
    with pytest.raises(ValueError, match="lower"):
        convergence(torch.zeros(2), 1.0, 0.0)
    with pytest.raises(TypeError, match="weight"):
        convergence([0.5])

