"""Tests of the explorer update functions and training helpers in snnlab.widgets."""
import matplotlib

matplotlib.use("Agg")

import io

import pytest
import torch
from matplotlib.figure import Figure

from snnlab import viz, widgets


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
    before = viz.weight_convergence(w)
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
    assert h["rates"] == (0.03, -0.0225)


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
