"""Tests of the explorer update functions and training helpers in snnlab.widgets."""
import matplotlib

matplotlib.use("Agg")

import io

import pytest
import torch
from matplotlib.figure import Figure

from snnlab import viz, widgets
from snnlab.learning import RateDoubling, convergence


@pytest.fixture(scope="module")
def images():
    g = torch.Generator().manual_seed(0)
    x = torch.zeros(3, 28, 28, dtype=torch.uint8)
    x[:, 8:20, 12:16] = 255  # a vertical stroke
    x[2] = torch.randint(0, 256, (28, 28), generator=g, dtype=torch.uint8)
    return x


def _png(fig):
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def test_mnist_digit_picks_and_checks(images):
    assert torch.equal(widgets.mnist_digit(2, images), images[2])
    with pytest.raises(ValueError, match="index"):
        widgets.mnist_digit(3, images)
    with pytest.raises(TypeError, match="index"):
        widgets.mnist_digit(1.5, images)


def test_mnist_digit_default_is_mnist_test_set():
    d = widgets.mnist_digit(0)
    assert d.shape == (28, 28) and d.dtype == torch.uint8


def test_retina_view_redraws_a_new_figure(images):
    a = widgets.retina_view(7, 1.0, 2.0, 50.0, 0, images=images)
    b = widgets.retina_view(7, 1.0, 2.0, 50.0, 0, norm_radius=4, images=images)
    assert isinstance(a, Figure) and a is not b and len(a.axes) == 5
    assert "local norm r=4" in b.get_suptitle()
    assert a.axes[1].get_title() == "ON kernel 7x7"
    assert _png(a) != _png(widgets.retina_view(7, 1.0, 2.0, 0.0, 0, images=images))


def test_retina_view_threshold_reduces_active_pixels(images):
    def active(fig):
        return int(fig.axes[3].get_title().split("(")[1].split()[0])

    assert active(widgets.retina_view(5, 1.0, 2.0, 200.0, 0, images=images)) <= \
        active(widgets.retina_view(5, 1.0, 2.0, 10.0, 0, images=images))


def test_retina_view_bad_arguments(images):
    with pytest.raises(ValueError, match="size"):
        widgets.retina_view(4, images=images)


def test_wave_view_time_steps(images):
    fig = widgets.wave_view(6, 0, images=images)
    axes = fig.get_axes()
    assert axes[1].get_title() == "cumulative spike-wave, T = 6"
    counts = axes[1].lines[0].get_ydata()
    assert len(counts) == 6 and all(b >= a for a, b in zip(counts, counts[1:]))
    frames = [a for a in axes if a.get_title().startswith("t = ")]
    assert len(frames) == 6
    with pytest.raises(ValueError, match="time_steps"):
        widgets.wave_view(0, images=images)


def test_competition_view_k_and_radius(images):
    fig = widgets.competition_view(4, 2, 0, images=images)
    ax = fig.axes[2]
    assert ax.get_title().endswith("k=4, r=2")
    n = int(ax.get_title().split(": ")[1].split()[0])
    assert 1 <= n <= 4 and len(ax.patches) == n
    fig0 = widgets.competition_view(4, 0, 0, images=images)
    assert len(fig0.axes[2].patches) == 0
    with pytest.raises(ValueError, match="k"):
        widgets.competition_view(0, 1, images=images)


def test_train_stdp_layer_learns_and_records():
    times = torch.full((6, 1, 8, 8), 15, dtype=torch.uint8)
    times[:, 0, 2:6, 3] = 0  # a vertical bar spikes first
    g = torch.Generator().manual_seed(1)
    w = torch.rand(3, 1, 3, 3, generator=g) * 0.1 + 0.5
    before = convergence(w)
    h = widgets.train_stdp_layer(times, w, rates=(0.05, -0.05), threshold=1.0, k=1, radius=1,
                                 snapshot_every=3)
    assert len(h["convergence"]) == 6 and len(h["winners"]) == 6
    assert [s for s, _ in h["snapshots"]] == [0, 3, 6]
    assert h["convergence"][-1] < before
    assert float(w.min()) >= 0.0 and float(w.max()) <= 1.0
    with pytest.raises(ValueError, match="channels"):
        widgets.train_stdp_layer(times, torch.rand(3, 2, 3, 3))


def test_train_stdp_layer_rate_doubling():
    times = torch.zeros(5, 1, 4, 4, dtype=torch.uint8)
    h = widgets.train_stdp_layer(times, torch.full((2, 1, 3, 3), 0.5), rates=(0.01, -0.0075),
                                 threshold=1.0, k=1, double_every=2, max_a_plus=0.03)
    assert h["rates"] == pytest.approx((0.03, -0.0225))
    # the protocols' schedule: a+ doubles before the 2nd and the 4th sample, capped at 0.03
    sched = RateDoubling(0.01, -0.0075, every=2, max_a_plus=0.03)
    assert [sched.step()[0] for _ in range(5)] == pytest.approx([0.01, 0.02, 0.02, 0.03, 0.03])


def test_rstdp_readout_learns_two_patterns():
    times = torch.full((2, 1, 4, 4), 15, dtype=torch.uint8)
    times[0, 0, :, :2] = 0
    times[1, 0, :, 2:] = 0
    idx = torch.arange(40) % 2
    x, y = times[idx], idx
    g = torch.Generator().manual_seed(0)
    w = torch.rand(4, 1, 4, 4, generator=g) * 0.1 + 0.75
    h = widgets.train_rstdp_readout(x, y, w, 2, reward=(0.05, -0.05), punish=(-0.05, 0.05),
                                    block=10, pool=1)
    assert len(h["accuracy"]) == 4 and h["accuracy"][-1] == 1.0
    assert torch.equal(widgets.rstdp_decide(times, w, 2, pool=1), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="labels"):
        widgets.train_rstdp_readout(x, y[:3], w, 2)


def test_retina_view_equal_sigmas_explains_instead_of_raising(images):
    fig = widgets.retina_view(7, 1.5, 1.5, 50.0, 0, images=images)
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert any("cancel" in t for t in texts)


def _stroke_times(n=40, seed=0):
    """Random-ish ON/OFF inputs with strokes: enough structure for a few STDP winners."""
    g = torch.Generator().manual_seed(seed)
    t = torch.randint(0, 16, (n, 2, 12, 12), generator=g, dtype=torch.uint8)
    t[:, 0, 3:9, 5:7] = 0
    return t


def test_stdp_view_stabiliser_and_rates_drive_weights_to_the_bounds():
    t = _stroke_times()
    soft = widgets.stdp_view(0.02, -0.015, k=2, radius=1, stabilizer=True, samples=40, times=t)
    hard = widgets.stdp_view(0.02, -0.015, k=2, radius=1, stabilizer=False, samples=40, times=t)
    near = [float(f.axes[2].get_title().split("%")[0]) for f in (soft, hard)]
    # without the stabiliser the same updates are not damped near 0.8: more weights reach a bound
    assert near[1] > near[0]
    assert "stabiliser off" in hard.get_suptitle() and len(_png(hard)) > 1000
    with pytest.raises(ValueError, match="a_plus"):
        widgets.stdp_view(-0.1, -0.1, times=t, samples=10)
    with pytest.raises(ValueError, match="times"):
        widgets.stdp_view(samples=50, times=t)


def test_train_rstdp_readout_respects_bounds():
    times = torch.randint(0, 16, (30, 1, 4, 4), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    y = torch.arange(30) % 2
    w = torch.full((4, 1, 2, 2), 0.8)
    widgets.train_rstdp_readout(times, y, w, 2, reward=(0.5, -0.5), punish=(-0.5, 0.5), adaptive=False,
                                use_stabilizer=False, bounds=(0.2, 0.8), block=10)
    assert float(w.min()) >= 0.2 and float(w.max()) <= 0.8
    assert bool(((w == 0.2) | (w == 0.8)).any()), "rates of 0.5 without stabiliser must hit a bound"
    with pytest.raises(ValueError, match="bounds"):
        widgets.train_rstdp_readout(times, y, w, 2, bounds=(0.8, 0.2))


def test_rstdp_view_reward_only_and_bad_bounds():
    g = torch.Generator().manual_seed(0)
    t = torch.full((60, 1, 8, 8), 15, dtype=torch.uint8)
    y = torch.arange(60) % 2
    t[y == 0, 0, :, :4] = torch.randint(0, 8, (30, 8, 4), generator=g, dtype=torch.uint8)
    t[y == 1, 0, :, 4:] = torch.randint(0, 8, (30, 8, 4), generator=g, dtype=torch.uint8)
    fig = widgets.rstdp_view(0.05, 0.05, samples=60, data=(t, y, t, y), n_per_class=2)
    acc = float(fig.axes[0].get_title().split()[2].rstrip("%"))
    assert acc > 50.0, "two separable patterns: R-STDP must beat chance"
    counts = [p.get_height() for p in fig.axes[1].patches]
    assert sum(counts) <= 60 and len(counts) == 2
    msg = widgets.rstdp_view(lower=0.8, upper=0.2, data=(t, y, t, y), samples=60)
    assert any("no weight fits" in txt.get_text() for ax in msg.axes for txt in ax.texts)
    with pytest.raises(ValueError, match="labels"):
        widgets.rstdp_view(samples=10, data=(t, y + 1, t, y + 1))


def test_tsne_view_caches_and_checks():
    x = torch.cat([torch.zeros(15, 3), torch.ones(15, 3)]) + 0.1 * torch.rand(30, 3)
    labels = torch.arange(30) // 15
    widgets._TSNE_CACHE.clear()
    fig = widgets.tsne_view("a", 5, {"a": x}, labels)
    assert len(widgets._TSNE_CACHE) == 1 and fig.axes[0].get_legend() is not None
    widgets.tsne_view("a", 5, {"a": x}, labels)
    assert len(widgets._TSNE_CACHE) == 1, "the same space and perplexity are not recomputed"
    with pytest.raises(ValueError, match="space"):
        widgets.tsne_view("b", 5, {"a": x}, labels)
    with pytest.raises(TypeError, match="spaces"):
        widgets.tsne_view("a", 5, None, labels)


def test_strokes_to_image_is_mnist_like():
    assert int(widgets.strokes_to_image([]).sum()) == 0
    # the same shape drawn small in a corner or large in the middle gives the same digit
    small = widgets.strokes_to_image([[(10, 10), (10, 60)], [(10, 10), (40, 10)]])
    large = widgets.strokes_to_image([[(40, 40), (40, 240)], [(40, 40), (160, 40)]])
    assert (small.float() - large.float()).abs().mean() < 20
    ys, xs = torch.nonzero(large, as_tuple=True)
    assert 19 <= int(ys.max() - ys.min()) + 1 <= 21  # fits a 20x20 box
    w = large.float()
    cy = float((w.sum(1) * torch.arange(28)).sum() / w.sum())
    cx = float((w.sum(0) * torch.arange(28)).sum() / w.sum())
    assert abs(cy - 13.5) <= 1.0 and abs(cx - 13.5) <= 1.0, "centre of mass in the middle"
    with pytest.raises(TypeError, match="strokes"):
        widgets.strokes_to_image("a stroke")


@pytest.fixture(scope="module")
def mozafari_net():
    import snnlab

    return snnlab.pretrained("mozafari2019_quick").network


def test_digit_pipeline_decides_as_the_network(mozafari_net):
    from snnlab.coding import Encoder
    from snnlab.data import load_mnist

    x, y = load_mnist(train=False)
    decisions = mozafari_net(Encoder.mozafari2019().encode_batch(x[:8]))
    for i in range(8):
        out = widgets.digit_pipeline(x[i], mozafari_net)
        assert out["decision"] == int(decisions[i])
        assert int(out["class_potential"].argmax()) == out["decision"]
        assert out["winners1"].shape == (5, 3) and out["winners2"].shape == (8, 3)
    assert int((decisions == y[:8]).sum()) >= 6, "the stored network reads MNIST digits"


def test_digit_view_and_canvas(mozafari_net):
    pytest.importorskip("ipycanvas")
    from snnlab.data import load_mnist

    img = load_mnist(train=False)[0][0]
    fig = widgets.digit_view(img, mozafari_net)
    assert fig.get_suptitle().startswith("decision: ") and len(_png(fig)) > 10000
    pad = widgets.DigitCanvas(mozafari_net)
    assert pad.status.value.startswith("draw a digit")
    pad.draw([(140, 40), (140, 240)])
    assert pad.status.value.startswith("decision: ") and pad.status.value.endswith("(your digit)")
    assert len(pad.strokes) == 1 and len(pad.figure.value) > 10000
    pad.clear()
    assert pad.strokes == [] and pad.status.value.startswith("draw a digit")
    pad.show_example()
    assert "MNIST test digit #0" in pad.status.value
