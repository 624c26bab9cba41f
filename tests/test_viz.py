"""Tests of snnlab.viz (Agg backend, no display)."""
import matplotlib

matplotlib.use("Agg")

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from snnlab import analysis, viz
from snnlab.coding import times_to_wave
from snnlab.retina import dog_kernel

RESULTS = Path(__file__).resolve().parents[1] / "results"


def _renders(fig):
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()[:8] == b"\x89PNG\r\n\x1a\n"


def test_new_figure_grid():
    fig, axes = viz.new_figure(2, 3)
    assert isinstance(fig, Figure) and axes.shape == (2, 3)
    with pytest.raises(ValueError, match="nrows"):
        viz.new_figure(0, 1)


def test_show_kernels_symmetric_scale_and_titles():
    k = dog_kernel(7, 1, 2)
    fig = viz.show_kernels([k, -k], ["ON", "OFF"], annotate=True)
    im = fig.axes[0].images[0]
    lo, hi = im.get_clim()
    assert lo == -hi == -float(k.abs().max())
    assert [a.get_title() for a in fig.axes[:2]] == ["ON", "OFF"]
    assert _renders(fig)


def test_show_kernels_bad_input():
    with pytest.raises(TypeError, match="kernels"):
        viz.show_kernels(3)
    with pytest.raises(ValueError, match="titles"):
        viz.show_kernels(torch.rand(2, 3, 3), ["one"])
    with pytest.raises(ValueError, match="kernels"):
        viz.show_kernels(torch.rand(2, 2, 3, 3))


def test_show_maps_grid_and_given_axes():
    fig = viz.show_maps(torch.rand(5, 4, 4), ncols=3, suptitle="maps")
    assert len(fig.axes) == 6 and not fig.axes[5].axison
    fig2, axes = viz.new_figure(1, 2)
    assert viz.show_maps(torch.rand(2, 4, 4), axes=axes) is fig2
    with pytest.raises(ValueError, match="axes"):
        viz.show_maps(torch.rand(3, 4, 4), axes=axes)


def test_show_time_grid_layout_and_annotation():
    wave = times_to_wave(torch.tensor([[[0, 1], [2, 3]], [[3, 3], [0, 0]]]), 4)
    fig = viz.show_time_grid(wave, annotate=True)
    assert len(fig.axes) == 2 * 4
    assert fig.axes[0].get_title() == "t = 0"
    assert len(fig.axes[0].texts) == 4  # one value per cell
    assert _renders(fig)
    with pytest.raises(ValueError, match="x"):
        viz.show_time_grid(torch.zeros(2, 2, 2))


def test_spike_raster_counts_only_spikes():
    times = torch.tensor([[[0, 1], [2, 9]], [[9, 9], [1, 0]]])
    fig = viz.spike_raster(times, 3, channel_names=["a", "b"])
    ax = fig.axes[0]
    n = sum(len(c.get_offsets()) for c in ax.collections)
    assert n == 5
    assert ax.get_legend() is not None


def test_spike_frames_titles_count_new_spikes():
    times = torch.tensor([[[0, 0], [1, 4]], [[2, 0], [4, 4]]])
    fig = viz.spike_frames(times, 3)
    assert [a.get_title() for a in fig.axes] == ["t = 0 (3)", "t = 1 (1)", "t = 2 (1)"]
    img = fig.axes[1].images[0].get_array()
    assert np.allclose(img[0, 0], 0.75)  # spiked earlier: grey


def test_show_winners_draws_windows():
    v = torch.zeros(2, 3, 8, 8)
    v[1, 0, 2, 2] = 3.0
    v[1, 2, 6, 6] = 2.0
    win = torch.tensor([[0, 2, 2], [2, 6, 6], [-1, -1, -1]])
    fig = viz.show_winners(v, win, radius=2, title="w")
    ax = fig.axes[0]
    assert len(ax.patches) == 2 and len(ax.texts) == 2 and ax.get_title() == "w"


def test_reconstruct_features_is_full_convolution():
    w = torch.zeros(1, 2, 3, 3)
    w[0, 0, 1, 1] = 1.0
    k = torch.stack([dog_kernel(5, 1, 2), dog_kernel(5, 2, 1)])
    r = viz.reconstruct_features(w, k)
    assert r.shape == (1, 7, 7)
    assert torch.allclose(r[0, 1:6, 1:6], k[0])
    with pytest.raises(ValueError, match="kernels"):
        viz.reconstruct_features(w, torch.ones(3, 5, 5))


def test_tile_features_normalises_each_map():
    x = torch.stack([torch.arange(4.0).view(2, 2), 10 * torch.arange(4.0).view(2, 2)])
    t = viz.tile_features(x, ncols=2, pad=1)
    assert t.shape == (2, 5)
    assert torch.isnan(t[:, 2]).all()
    assert torch.equal(t[:, :2], t[:, 3:])
    assert float(t[~torch.isnan(t)].max()) == 1.0


def test_feature_grid_and_evolution():
    fig = viz.feature_grid(torch.rand(6, 5, 5), ncols=3, title="f")
    assert fig.axes[0].get_title() == "f"
    snaps = [(0, torch.rand(4, 2, 5, 5)), (5, torch.rand(4, 2, 5, 5))]
    fig = viz.feature_evolution(snaps, torch.rand(2, 3, 3), ncols=2)
    assert len(fig.axes) == 2 and _renders(fig)
    with pytest.raises(TypeError, match="snapshots"):
        viz.feature_evolution([])


def test_learning_curve_overlay():
    fig = viz.learning_curve([1, 2, 3], label="a", ylabel="acc")
    viz.learning_curve([3, 2, 1], x=[10, 20, 30], ax=fig.axes[0], label="b")
    ax = fig.axes[0]
    assert len(ax.lines) == 2 and ax.get_ylabel() == "acc"
    with pytest.raises(ValueError, match="x"):
        viz.learning_curve([1, 2], x=[1, 2, 3])


def test_reconstruct_features_balance_equalises_the_filters():
    """A feature with equal weights on an ON and an OFF filter that are mirror images cancels
    when balanced; unbalanced, the 8x larger OFF filter dominates."""
    on = dog_kernel(7, 1, 2)
    off = -8 * on  # the OFF DoG is the mirror of the ON one, 8x larger after max-normalisation
    w = torch.full((1, 2, 3, 3), 0.8)
    plain = viz.reconstruct_features(w, torch.stack([on, off]))
    balanced = viz.reconstruct_features(w, torch.stack([on, off]), balance=True)
    assert float(plain.abs().max()) > 1.0
    assert float(balanced.abs().max()) < 1e-5
    w[0, 0] = 1.0  # an ON preference now shows with the ON filter's sign
    assert float(viz.reconstruct_features(w, torch.stack([on, off]), balance=True)[0, 4, 4]) > 0


def test_tile_features_shared_scale_keeps_flat_maps_flat():
    x = torch.stack([torch.full((2, 2), 1e-3), torch.tensor([[1.0, -1.0], [0.0, 0.5]])])
    t = viz.tile_features(x, ncols=2, pad=1, normalize="shared")
    assert torch.allclose(t[:, :2], torch.full((2, 2), 0.5), atol=1e-3)   # near 0 -> mid-grey
    assert float(t[0, 3]) == 1.0 and float(t[0, 4]) == 0.0
    with pytest.raises(ValueError, match="normalize"):
        viz.tile_features(x, normalize="max")


def test_show_maps_center_makes_a_symmetric_scale_and_labels_the_colorbar():
    fig = viz.show_maps([torch.tensor([[0.0, 3.0], [-1.0, 1.0]])], cmap="RdBu_r", center=0.0,
                        colorbar=True, cbar_label="response (a.u.)")
    im = fig.axes[0].images[0]
    assert im.get_clim() == (-3.0, 3.0)
    assert fig.axes[1].get_ylabel() == "response (a.u.)"


def test_learning_curve_integer_ticks_for_integer_x():
    fig = viz.learning_curve([1.0, 2.0, 3.0], x=[1, 2, 3])
    ticks = fig.axes[0].get_xticks()
    assert all(float(t).is_integer() for t in ticks)
    fig = viz.learning_curve([1.0, 2.0], x=[0.5, 1.5])   # fractional abscissae keep their ticks
    assert not all(float(t).is_integer() for t in fig.axes[0].get_xticks())


def test_dot_plot_zooms_to_the_values_and_draws_references():
    fig = viz.dot_plot({"a": 98.5, "b": 98.2}, reference={"paper": 98.4})
    ax = fig.axes[0]
    lo, hi = ax.get_xlim()
    assert 96.5 < lo < 98.2 and 98.5 < hi < 100.0
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b"]
    assert any(abs(line.get_xdata()[0] - 98.4) < 1e-9 for line in ax.lines) and _renders(fig)
    with pytest.raises(TypeError, match="values"):
        viz.dot_plot({})


def test_feature_colors_are_distinct():
    colors, cmap = viz.feature_colors(30)
    assert colors.shape == (30, 4) and len({tuple(c) for c in colors.round(4)}) == 30
    assert cmap.N == 30
    with pytest.raises(ValueError, match="n"):
        viz.feature_colors(0)


def _mz_history(n, validation=True):
    return [{"epoch": e, "train": {"correct": 0.8 + 0.01 * e}, "test": {"correct": 0.9 + 0.001 * e - 0.002 * (e == 3)},
             "validation": {"correct": 0.85 + 0.01 * (e == 2)} if validation else None} for e in range(1, n + 1)]


def test_mozafari_headline_never_quotes_the_best_test_epoch():
    new = {"history": _mz_history(4), "chosen_epoch": 2}
    head = viz.mozafari_headline(new)
    assert head["by"] == "validation" and head["epoch"] == 2
    assert abs(head["test_accuracy"] - 90.2) < 1e-9 and abs(head["validation_accuracy"] - 86.0) < 1e-9
    old = {"history": [{k: v for k, v in h.items() if k != "validation"} for h in _mz_history(4)],
           "best_epoch": 4, "best_test_accuracy": 90.4}
    head = viz.mozafari_headline(old)
    assert head["by"].startswith("final epoch") and head["epoch"] == 4 and head["validation_accuracy"] is None
    with pytest.raises(ValueError, match="history"):
        viz.mozafari_headline({"history": []})


def test_mozafari_headline_at_an_epoch_chooses_among_the_first_epochs():
    run = {"history": _mz_history(4), "chosen_epoch": 2}
    assert viz.mozafari_headline(run, at=1)["epoch"] == 1
    assert viz.mozafari_headline(run, at=4)["epoch"] == 2
    # equal validation accuracy: the later epoch, as the protocol keeps it
    flat = {"history": _mz_history(3, validation=False), "chosen_epoch": 3}
    for h in flat["history"]:
        h["validation"] = {"correct": 0.9}
    assert viz.mozafari_headline(flat, at=2)["epoch"] == 2
    # a stored run: choosing among all its epochs gives the protocol's own choice
    stored = analysis.read_results(RESULTS / "mozafari2019_published")
    whole = viz.mozafari_headline(stored)
    assert viz.mozafari_headline(stored, at=len(stored["history"])) == whole
    for bad in (0, 5, True, 2.0):
        with pytest.raises(ValueError, match="at: expected an epoch in 1..4"):
            viz.mozafari_headline(run, at=bad)


def test_run_figure_per_model():
    stdp = [{"layer": "conv1", "epoch": 1, "mean_w_1_minus_w": 1e-2, "winners_per_sample": 5.0},
            {"layer": "conv2", "epoch": 1, "mean_w_1_minus_w": 1e-3},
            {"layer": "conv2", "epoch": 2, "mean_w_1_minus_w": 0.0}]
    kh = {"model": "kheradpisheh2018", "seed": 1, "history": stdp, "test_accuracy": 98.5, "paper_accuracy": 98.4,
          "svm_c": 0.003, "svm_validation": {"0.001": 98.0, "0.003": 98.6}}
    fig = viz.run_figure(kh)
    conv, svm = fig.axes[:2]
    assert conv.get_yscale() == "log" and len(conv.lines) == 2
    assert svm.get_xscale() == "log" and "98.50" in " ".join(t.get_text() for t in svm.get_legend().get_texts())
    assert _renders(fig)
    mz = {"model": "mozafari2019", "seed": 1, "history": _mz_history(25), "chosen_epoch": 2,
          "stdp_history": stdp, "paper_accuracy": 97.2}
    fig = viz.run_figure(mz)
    assert len(fig.axes) == 3  # convergence, all epochs, zoom on the later ones (more than 20 epochs)
    legend = " ".join(t.get_text() for t in fig.axes[1].get_legend().get_texts())
    assert "validation" in legend and "epoch 2" in legend and _renders(fig)
    old = {k: v for k, v in mz.items() if k != "chosen_epoch"}
    old["history"] = [{k: v for k, v in h.items() if k != "validation"} for h in _mz_history(3)]
    legend = " ".join(t.get_text() for t in viz.run_figure(old).axes[1].get_legend().get_texts())
    assert "no validation set: final epoch 3" in legend
    with pytest.raises(ValueError, match="model"):
        viz.run_figure({"model": "lenet"})
    with pytest.raises(TypeError, match="results"):
        viz.run_figure([])


def test_spike_frames_channel_legend():
    fig = viz.spike_frames(torch.tensor([[[0, 1]], [[2, 5]]]), 3, channel_names=["ON", "OFF"])
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["ON", "OFF", "fired earlier"]
    with pytest.raises(ValueError, match="channel_names"):
        viz.spike_frames(torch.tensor([[[0, 1]]]), 3, channel_names=["a", "b"])
