"""Tests of snnlab.analysis and the plotting helpers the notebooks 07-11 add to snnlab.viz."""
import matplotlib

matplotlib.use("Agg")

import io
import json

import numpy as np
import pytest
import torch

from snnlab import analysis as an
from snnlab import viz
from snnlab.data import data_root
from snnlab.models.kheradpisheh2018 import Kheradpisheh2018, Kheradpisheh2018Config
from snnlab.layers import pool_times

HAVE_MNIST = (data_root() / "MNIST" / "raw").is_dir()
needs_mnist = pytest.mark.skipif(not HAVE_MNIST, reason="MNIST not staged in data/MNIST/raw")
g = torch.Generator().manual_seed(11)


def _renders(fig):
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()[:8] == b"\x89PNG\r\n\x1a\n"


# --- reconstruct_layer ---------------------------------------------------------------------
def test_reconstruct_layer_without_pooling_is_reconstruct_features():
    w = torch.rand(4, 3, 2, 2, generator=g)
    lower = torch.randn(3, 5, 5, generator=g)
    assert torch.allclose(an.reconstruct_layer(w, lower), viz.reconstruct_features(w, lower))


def test_reconstruct_layer_places_the_pooling_window_at_the_tap():
    w = torch.zeros(1, 1, 2, 2)
    w[0, 0, 1, 0] = 1.0                           # tap (i, j) = (1, 0)
    out = an.reconstruct_layer(w, torch.ones(1, 1, 1), pool=2)
    expected = torch.zeros(1, 4, 4)
    expected[0, 2:4, 0:2] = 0.25                  # 2x2 mean window, shifted by 2 * (1, 0)
    assert torch.equal(out, expected)


def test_reconstruct_layer_spacing_dilates_window_and_stride():
    w = torch.zeros(1, 1, 2, 2)
    w[0, 0, 0, 1] = 2.0
    out = an.reconstruct_layer(w, torch.ones(1, 1, 1), pool=3, spacing=2)
    assert out.shape == (1, 11, 11)               # (2 - 1) * 3 * 2 + 1 + (3 - 1) * 2
    nz = out[0].nonzero().tolist()
    assert nz == [[y, x] for y in (0, 2, 4) for x in (6, 8, 10)]
    assert torch.allclose(out[0, 0, 6], torch.tensor(2.0 / 9))


def test_reconstruct_layer_is_linear_in_the_weights():
    w1, w2 = torch.rand(2, 3, 2, 2, generator=g), torch.rand(2, 3, 2, 2, generator=g)
    low = torch.randn(3, 4, 4, generator=g)
    both = an.reconstruct_layer(w1 + w2, low, pool=2)
    assert torch.allclose(both, an.reconstruct_layer(w1, low, pool=2) + an.reconstruct_layer(w2, low, pool=2), atol=1e-5)


def test_reconstruct_layer_bad_input():
    with pytest.raises(ValueError, match="lower"):
        an.reconstruct_layer(torch.rand(2, 3, 2, 2), torch.rand(4, 5, 5))
    with pytest.raises(ValueError, match="pool"):
        an.reconstruct_layer(torch.rand(2, 3, 2, 2), torch.rand(3, 5, 5), pool=0)
    with pytest.raises(TypeError, match="weight"):
        an.reconstruct_layer([[1.0]], torch.rand(3, 5, 5))


# --- class_kernels ---------------------------------------------------------------------------
def test_class_kernels_means_per_class():
    w = torch.rand(6, 4, 3, 3, generator=g)
    dmap = torch.tensor([0, 0, 1, 1, 2, 2])
    k = an.class_kernels(w, dmap)
    assert k.shape == (3, 3, 3)
    assert torch.allclose(k[1], (w[2] + w[3]).sum(0) / 2)
    s = an.class_kernels(w, dmap, over="space")
    assert s.shape == (3, 4)
    assert torch.allclose(s[2], (w[4] + w[5]).sum((1, 2)) / 2)


def test_class_kernels_bad_input():
    with pytest.raises(ValueError, match="over"):
        an.class_kernels(torch.rand(2, 1, 2, 2), torch.tensor([0, 1]), over="time")
    with pytest.raises(ValueError, match="decision_map"):
        an.class_kernels(torch.rand(2, 1, 2, 2), torch.tensor([0, 1, 1]))


# --- confusion_matrix ------------------------------------------------------------------------
def test_confusion_matrix_matches_sklearn():
    from sklearn.metrics import confusion_matrix as sk

    y = torch.randint(0, 10, (500,), generator=g)
    p = torch.where(torch.rand(500, generator=g) < 0.7, y, torch.randint(0, 10, (500,), generator=g))
    m = an.confusion_matrix(y, p, 10)
    assert m.dtype == torch.int64 and m.shape == (10, 10)
    assert np.array_equal(m.numpy(), sk(y.numpy(), p.numpy(), labels=range(10)))
    assert int(m.sum()) == 500 and int(m.diag().sum()) == int((y == p).sum())


def test_confusion_matrix_silent_column_and_errors():
    y = torch.tensor([0, 1, 2, 2])
    p = torch.tensor([0, -1, -1, 1])
    m = an.confusion_matrix(y, p, 3, silent=True)
    assert m.tolist() == [[1, 0, 0, 0], [0, 0, 0, 1], [0, 1, 0, 1]]
    with pytest.raises(ValueError, match="silent=True"):
        an.confusion_matrix(y, p, 3)
    with pytest.raises(ValueError, match="num_classes"):
        an.confusion_matrix(y, torch.tensor([0, 1, 2, 5]), 3)
    with pytest.raises(ValueError, match="predictions"):
        an.confusion_matrix(y, torch.tensor([0, 1]))


# --- Kheradpisheh features and the in-memory protocol -------------------------------------
def _rand_times(n, t=15, p=0.3):
    times = torch.randint(0, t, (n, 2, 28, 28), generator=g)
    return times.masked_fill(torch.rand(n, 2, 28, 28, generator=g) > p, t).to(torch.uint8)


def test_kheradpisheh_features_match_the_network_and_the_time_domain():
    net = Kheradpisheh2018(seed=3)
    with torch.no_grad():
        net.conv1.weight.mul_(0.5)                # some conv1 neurons stay silent
    times = _rand_times(6)
    f = an.kheradpisheh_features(net, times, batch_size=4)
    assert f["layer2"].dtype == torch.uint8 and torch.equal(f["layer2"], net(times))
    t1 = net.conv1.times(times)
    spiked = (pool_times(t1, 2, 2, 1) < 15).flatten(1).to(torch.uint8)
    assert torch.equal(f["layer1"], spiked)
    assert 0 < float(f["layer1"].float().mean()) < 1


@needs_mnist
def test_run_kheradpisheh_equals_reproduce(tmp_path):
    from snnlab.models import kheradpisheh2018 as kh

    cfg = Kheradpisheh2018Config(epochs=(1, 1), train_samples=(60, 60), svm_train_samples=200, test_samples=100)
    ref = kh.reproduce(cfg, tmp_path, device="cpu", seed=2, progress=False, log=lambda m: None)
    out = an.run_kheradpisheh(cfg, seed=2)
    assert out["test_accuracy"] == pytest.approx(ref["test_accuracy"], abs=1e-4)
    assert out["confusion"].tolist() == ref["confusion"]
    assert out["test_silent"] == ref["test_silent"]
    saved = __import__("snnlab.io", fromlist=["load_model"]).load_model(tmp_path / "weights.pt")
    assert torch.equal(saved.conv2.weight, out["net"].conv2.weight)
    stdp_only = an.run_kheradpisheh(cfg, seed=2, classify=False)
    assert "test_accuracy" not in stdp_only and torch.equal(stdp_only["net"].conv1.weight, saved.conv1.weight)


@needs_mnist
def test_time_steps_sweep_rows_follow_the_rank_order_bins():
    cfg = Kheradpisheh2018Config(epochs=(1, 0), train_samples=(20, 20), svm_train_samples=100, test_samples=50)
    rows = an.time_steps_sweep(cfg, time_steps=(5, 15))
    assert [r["time_steps"] for r in rows] == [5, 15]
    assert all("net" not in r and 0 <= r["test_accuracy"] <= 100 and r["wall_s"] > 0 for r in rows)
    assert all(0 <= r["conv1_convergence"] <= 0.25 and "conv2_convergence" not in r for r in rows)
    # n spiking inputs spread over T bins: 3x the spikes per step at T = 5 than at T = 15
    ratio = rows[0]["input_spikes_per_step"] / rows[1]["input_spikes_per_step"]
    assert 2.8 < ratio < 3.1


def test_run_kheradpisheh_and_sweep_bad_input():
    with pytest.raises(TypeError, match="config"):
        an.run_kheradpisheh(config={"time_steps": 15})
    with pytest.raises(TypeError, match="config"):
        an.time_steps_sweep(config="quick")
    with pytest.raises(ValueError, match="time_steps"):
        an.time_steps_sweep(time_steps=(10, 0))
    tiny = ((torch.zeros(5, 28, 28, dtype=torch.uint8), torch.zeros(5)),) * 2
    with pytest.raises(ValueError, match="images"):
        an.run_kheradpisheh(Kheradpisheh2018Config.quick(), images=tiny)


# --- spaces: t-SNE, k-NN, silhouette ------------------------------------------------------
def _blobs(n_per=30, dims=5, spread=0.05):
    centres = torch.eye(3, dims) * 3
    x = torch.cat([c + spread * torch.randn(n_per, dims, generator=g) for c in centres])
    return x, torch.arange(3).repeat_interleave(n_per)


def test_space_scores_separated_and_random_labels():
    x, y = _blobs()
    s = an.space_scores(x, y, k=3, folds=3)
    assert s["dims"] == 5 and s["knn_accuracy"] == 100.0 and s["silhouette"] > 0.9
    shuffled = y[torch.randperm(len(y), generator=g)]
    r = an.space_scores(x, shuffled, k=3, folds=3)
    assert r["knn_accuracy"] < 70 and r["silhouette"] < 0.2


def test_space_scores_bad_input():
    x, y = _blobs()
    with pytest.raises(ValueError, match="folds"):
        an.space_scores(x, y, folds=1)
    with pytest.raises(ValueError, match="labels"):
        an.space_scores(x, y[:-1])
    with pytest.raises(ValueError, match="labels"):
        an.space_scores(x, torch.zeros(len(y)))
    with pytest.raises(ValueError, match="x"):
        an.space_scores(x[:, 0], y)


def test_embed_tsne_keeps_clusters_apart_and_is_seeded():
    x, y = _blobs(n_per=20, dims=10)
    z = an.embed_tsne(x, perplexity=10, pca_dims=3)
    assert z.shape == (60, 2)
    assert np.allclose(z, an.embed_tsne(x, perplexity=10, pca_dims=3))
    # in the plane, every point is nearer its own cluster's centre than any other
    cents = np.stack([z[y.numpy() == c].mean(0) for c in range(3)])
    nearest = np.linalg.norm(z[:, None] - cents[None], axis=2).argmin(1)
    assert (nearest == y.numpy()).all()
    with pytest.raises(ValueError, match="perplexity"):
        an.embed_tsne(x, perplexity=100)


# --- timing, profiling, tables, stored runs ----------------------------------------------
def test_throughput_and_profile_calls():
    import time

    rate = an.throughput(lambda: time.sleep(0.02), n=10, repeats=2, warmup=False)
    assert 100 < rate < 600                       # 10 samples in ~0.02 s

    def inner():
        return sum(i * i for i in range(20000))

    rows = an.profile_calls(lambda: [inner() for _ in range(3)], top=5, sort="cumtime")
    names = [r["function"] for r in rows]
    assert any(n.startswith("inner (") for n in names)
    assert [r["calls"] for r in rows if r["function"].startswith("inner (")] == [3]
    with pytest.raises(TypeError, match="fn"):
        an.throughput(3, n=1)
    with pytest.raises(ValueError, match="sort"):
        an.profile_calls(inner, sort="calls")


def test_markdown_table():
    text = an.markdown_table([{"a": 1, "b": 0.123456}, {"a": 2, "b": None}], [("b", "B"), "a"], "{:.3f}")
    assert text.splitlines() == ["| B | a |", "| --- | --- |", "| 0.123 | 1 |", "|  | 2 |"]
    with pytest.raises(ValueError, match="rows"):
        an.markdown_table([])
    with pytest.raises(TypeError, match="rows"):
        an.markdown_table([1, 2])


def test_read_results_and_provenance(tmp_path):
    assert an.read_results(tmp_path) is None
    res = {"device": "cuda", "commit": "abc123", "config": {"name": "quick"},
           "wall_time_per_phase_s": {"stdp": 10.0, "svm": 2.5}}
    (tmp_path / "results.json").write_text(json.dumps(res))
    back = an.read_results(tmp_path)
    assert back == res
    p = an.provenance(back)
    assert p["commit"] == "abc123" and p["date"] == "not recorded" and p["wall_time_s"] == 12.5
    assert p["config"] == "quick"
    (tmp_path / "results.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="JSON object"):
        an.read_results(tmp_path)
    (tmp_path / "results.json").write_text("{broken")
    with pytest.raises(ValueError, match="folder"):
        an.read_results(tmp_path)
    with pytest.raises(TypeError, match="results"):
        an.provenance([1])


def test_provenance_fills_missing_keys_from_the_readme_table(tmp_path):
    run = tmp_path / "model_quick"
    run.mkdir()
    (tmp_path / "README.md").write_text(
        "# Stored runs\n\n| folder | command | device | date | commit |\n| --- | --- | --- | --- | --- |\n"
        "| `other/` | `x` | GPU | 2020-01-01 | 111 |\n"
        "| `model_quick/` | `snnlab reproduce m --quick` | CPU, 2 cores | 2026-11-23 | c44c861 |\n")
    p = an.provenance({"device": "cpu", "date": "2026-11-23"}, folder=run)
    assert p["command"] == "snnlab reproduce m --quick" and p["commit"] == "c44c861"
    assert p["device"] == "cpu" and p["device (README)"] == "CPU, 2 cores"
    assert p["date"] == "2026-11-23" and "date (README)" not in p
    assert an.provenance({}, folder=tmp_path / "missing")["commit"] == "not recorded"


def test_run_info_commit_inside_and_outside_a_checkout(tmp_path):
    import re
    from pathlib import Path

    outside = an.run_info(tmp_path)
    assert outside["commit"] == "unknown" and outside["threads"] >= 1
    inside = an.run_info(Path(__file__).parent)
    assert inside["commit"] == "unknown" or re.fullmatch(r"[0-9a-f]{4,40}(\+dirty)?", inside["commit"])


# --- viz helpers ---------------------------------------------------------------------------
def test_confusion_plot_labels_silent_column():
    m = an.confusion_matrix(torch.tensor([0, 1, 1]), torch.tensor([0, -1, 1]), 2, silent=True)
    fig = viz.confusion_plot(m, title="c")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "1", "silent"]
    assert sorted(t.get_text() for t in ax.texts) == ["1", "1", "1"]
    assert _renders(fig)
    with pytest.raises(ValueError, match="confusion"):
        viz.confusion_plot(torch.ones(3, 5))
    with pytest.raises(ValueError, match="class_names"):
        viz.confusion_plot(torch.ones(2, 2), class_names=["a"])


def test_embedding_plot_and_bar_chart():
    fig = viz.embedding_plot(np.random.rand(30, 2), np.arange(30) % 3, title="e")
    # one scatter per class (so that a legend can name each colour), one label per class
    assert len(fig.axes[0].collections) == 3 and len(fig.axes[0].texts) == 3 and _renders(fig)
    assert fig.axes[0].get_legend() is None
    fig = viz.embedding_plot(np.random.rand(30, 2), np.arange(30) % 3, legend=True)
    legend = fig.axes[0].get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["0", "1", "2"] and _renders(fig)
    with pytest.raises(ValueError, match="labels"):
        viz.embedding_plot(np.random.rand(30, 2), np.arange(29))
    fig = viz.bar_chart({"a": 1.0, "b": 2.0}, reference={"paper": 1.5}, ylabel="y")
    ax = fig.axes[0]
    assert [p.get_height() for p in ax.patches] == [1.0, 2.0] and len(ax.lines) == 1 and _renders(fig)
    fig = viz.bar_chart({"g1": {"x": 1.0, "y": 2.0}, "g2": {"y": 3.0}}, log=True)
    assert sorted(p.get_height() for p in fig.axes[0].patches) == [1.0, 2.0, 3.0]
    assert fig.axes[0].get_yscale() == "log"
    with pytest.raises(TypeError, match="values"):
        viz.bar_chart({"a": 1.0, "b": {"x": 1.0}})
    with pytest.raises(TypeError, match="values"):
        viz.bar_chart({})


def _noisy_blobs(n=60, d=5, seed=0, gap=3.0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    return torch.randn(n, d, generator=g) + gap * torch.nn.functional.one_hot(y, d)[:, :d].float(), y


def test_linear_probe_chooses_c_on_validation_and_checks():
    x, y = _noisy_blobs()
    r = an.linear_probe(x, y, grid=(0.001, 1.0), seed=3)
    assert set(r["validation"]) == {0.001, 1.0} and r["c"] in (0.001, 1.0)
    assert r["validation"][r["c"]] == max(r["validation"].values()), "C is the validation argmax"
    assert r["accuracy"] > 80.0 and r == an.linear_probe(x, y, grid=(0.001, 1.0), seed=3)
    noise = an.linear_probe(torch.randn(60, 5, generator=torch.Generator().manual_seed(1)), y, seed=3)
    assert noise["accuracy"] < r["accuracy"]
    with pytest.raises(ValueError, match="val_fraction"):
        an.linear_probe(x, y, val_fraction=0.6, test_fraction=0.5)
    with pytest.raises(ValueError, match="grid"):
        an.linear_probe(x, y, grid=(0.0,))
    with pytest.raises(ValueError, match="too few"):
        an.linear_probe(x[:3], y[:3])


def test_compare_spaces_means_over_draws():
    x, y = _noisy_blobs(90)
    rows = an.compare_spaces({"blobs": x, "noise": torch.rand(90, 5)}, y, 60, seeds=(0, 1, 2), k=3, folds=3)
    blobs, noise = rows
    assert blobs["space"] == "blobs" and blobs["dims"] == 5 and len(blobs["probe_c"]) == 3
    assert blobs["knn"] > noise["knn"] and blobs["silhouette"] > noise["silhouette"] and blobs["probe"] > noise["probe"]
    assert blobs["knn_sd"] >= 0.0 and noise["probe_sd"] > 0.0, "three different draws give different scores"
    one = an.compare_spaces({"blobs": x}, y, 60, seeds=(0,), k=3, folds=3)[0]
    assert one["knn_sd"] == one["silhouette_sd"] == one["probe_sd"] == 0.0
    with pytest.raises(ValueError, match="same samples"):
        an.compare_spaces({"a": x, "b": x[:50]}, y, 40)
    with pytest.raises(ValueError, match="n: expected at most 90"):
        an.compare_spaces({"a": x}, y, 100)
    with pytest.raises(TypeError, match="spaces"):
        an.compare_spaces({}, y, 10)
