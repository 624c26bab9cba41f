"""snnlab.pretrained: trained networks by name, verified by SHA-256, with their measured accuracy."""
from __future__ import annotations

import hashlib
import importlib
import json
import shutil
from pathlib import Path

import pytest
import torch

import snnlab
from snnlab.models.kheradpisheh2018 import Kheradpisheh2018, Kheradpisheh2018Config
from snnlab.models.kulkarni2018 import Kulkarni2018Config
from snnlab.models.mozafari2019 import Mozafari2019, Mozafari2019Config
from snnlab.svm import LinearSVM
from snnlab.data import data_root, load_mnist

pt = importlib.import_module("snnlab.pretrained")  # the module: snnlab.pretrained is the function
REGISTRY = json.loads(pt.REGISTRY.read_text())["networks"]
EXPECTED = {  # name -> network type, config type
    "kheradpisheh2018": (Kheradpisheh2018, Kheradpisheh2018Config),
    "kheradpisheh2018_quick": (Kheradpisheh2018, Kheradpisheh2018Config),
    "mozafari2019": (Mozafari2019, Mozafari2019Config),
    "mozafari2019_quick": (Mozafari2019, Mozafari2019Config),
    "kulkarni2018": (dict, Kulkarni2018Config),
    "kulkarni2018_published": (dict, Kulkarni2018Config),
}


def test_registry_names():
    assert pt.names() == sorted(EXPECTED)
    assert snnlab.pretrained is pt.pretrained and snnlab.Pretrained is pt.Pretrained


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_registry_matches_files_and_recorded_accuracy(name):
    """The SHA-256 is the shipped file's, and the accuracy the one its results.json records."""
    entry = REGISTRY[name]
    root = pt.REGISTRY.parent
    assert hashlib.sha256((root / entry["file"]).read_bytes()).hexdigest() == entry["sha256"]
    recorded = json.loads((root / entry["results"]).read_text())
    assert recorded["model"] == entry["model"]
    assert entry["accuracy"] == pytest.approx(recorded[entry["accuracy_key"]], abs=1e-9)
    assert (root / entry["results"]).parent == (root / entry["file"]).parent  # the same run


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_load_each_name(name):
    p = snnlab.pretrained(name)
    net_type, cfg_type = EXPECTED[name]
    assert isinstance(p, pt.Pretrained) and p.name == name
    assert isinstance(p.network, net_type) and isinstance(p.config, cfg_type)
    assert p.accuracy == REGISTRY[name]["accuracy"] and p.sha256 == REGISTRY[name]["sha256"]
    assert p.results.is_file() and p.path.is_file() and p.protocol
    if net_type is dict:
        assert p.network["W"].shape == (10, 8112) and p.network["kernels"].shape == (12, 1, 3, 3)
        assert p.classifier is None
    else:
        # the stored weights, not a fresh initialisation
        stored = torch.load(p.path, weights_only=True)["state_dict"]
        for key, value in p.network.state_dict().items():
            assert torch.equal(value, stored[key]), key
    if p.model == "kheradpisheh2018":  # its SVM, stored beside it and checked the same way
        assert p.classifier["svm_c"] == 0.003 and p.classifier["svm_train_samples"] == p.config.svm_train_samples
        assert isinstance(p.svm, LinearSVM) and p.svm.c == 0.003 and p.svm.coef_.shape[0] == 10
        svm = pt.REGISTRY.parent / p.classifier["file"]
        assert svm.parent == p.path.parent and hashlib.sha256(svm.read_bytes()).hexdigest() == p.classifier["sha256"]
    else:
        assert p.svm is None


def test_kheradpisheh_gives_features():
    p = snnlab.pretrained("kheradpisheh2018_quick")
    feats = p.network(torch.zeros(2, 2, 28, 28, dtype=torch.uint8))  # all inputs at t = 0
    assert feats.shape == (2, 12150) and feats.dtype == torch.uint8


def test_mozafari_run_before_the_validation_hold_out_loads():
    """The stored config has no validation_samples: the run trained on all 60k digits (from_dict)."""
    p = snnlab.pretrained("mozafari2019_quick")
    blob = torch.load(p.path, weights_only=True)
    assert "validation_samples" not in blob["config"]
    assert p.config.validation_samples == 0 and p.config.train_samples == (3000, 6000, 60000)
    assert p.config.conv2_output_threshold == 18.0
    assert p.network(torch.full((1, 6, 28, 28), 15, dtype=torch.uint8)).tolist() == [-1]  # no input: silent


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"name: unknown trained network 'mozafari2018'; known: kheradpisheh2018, "
                                         r"kheradpisheh2018_quick, kulkarni2018, kulkarni2018_published, "
                                         r"mozafari2019, mozafari2019_quick"):
        snnlab.pretrained("mozafari2018")
    with pytest.raises(TypeError, match="name: expected a str"):
        snnlab.pretrained(3)


def _copy_registry(tmp_path: Path, name: str) -> tuple[Path, Path]:
    """The registry and the weights of ``name`` copied under tmp_path; returns (registry, weights)."""
    entry = REGISTRY[name]
    for f in (entry["file"], entry["results"], *([entry["classifier"]["file"]] if "classifier" in entry else [])):
        dst = tmp_path / f
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(pt.REGISTRY.parent / f, dst)
    reg = tmp_path / "pretrained.json"
    shutil.copyfile(pt.REGISTRY, reg)
    return reg, tmp_path / entry["file"]


@pytest.mark.parametrize("name", ["kheradpisheh2018_quick", "kulkarni2018"])
def test_one_flipped_byte_is_refused(tmp_path, name):
    reg, weights = _copy_registry(tmp_path, name)
    assert snnlab.pretrained(name, registry=reg).sha256 == REGISTRY[name]["sha256"]  # the copy loads
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01
    weights.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=rf"path: {weights} is corrupted or was replaced: its SHA-256 is "
                                         rf"[0-9a-f]{{64}}, the registry expects {REGISTRY[name]['sha256']}"):
        snnlab.pretrained(name, registry=reg)


def test_default_registry_path_is_used(tmp_path, monkeypatch):
    """pretrained() reads REGISTRY at call time: a corrupted copy behind it is refused too."""
    reg, weights = _copy_registry(tmp_path, "mozafari2019_quick")
    weights.write_bytes(weights.read_bytes()[:-1])  # truncated
    monkeypatch.setattr(pt, "REGISTRY", reg)
    with pytest.raises(ValueError, match=f"path: {weights} is corrupted"):
        snnlab.pretrained("mozafari2019_quick")


def test_missing_weights_and_bad_registry(tmp_path):
    reg, weights = _copy_registry(tmp_path, "kulkarni2018")
    weights.unlink()
    with pytest.raises(FileNotFoundError, match=f"the weights of 'kulkarni2018' are missing: no file at {weights}"):
        snnlab.pretrained("kulkarni2018", registry=reg)
    with pytest.raises(FileNotFoundError, match="registry: no registry"):
        snnlab.pretrained("kulkarni2018", registry=tmp_path / "none.json")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"networks": {"x": {"model": "kulkarni2018"}}}))
    with pytest.raises(ValueError, match="registry: entry 'x' of .* lacks accuracy, accuracy_key, file"):
        pt.names(bad)


needs_mnist = pytest.mark.skipif(not (data_root() / "MNIST" / "raw").is_dir(), reason="needs MNIST in data/MNIST/raw")


@needs_mnist
@pytest.mark.parametrize("name, n", [("kheradpisheh2018_quick", 300), ("mozafari2019_quick", 300), ("kulkarni2018", 8)])
def test_evaluate_counts_what_predict_decides(name, n):
    """evaluate (the protocol's cached encodings) and predict (grey images) decide alike."""
    p = snnlab.pretrained(name)
    r = pt.evaluate(p, n)
    x, y = load_mnist(False)
    decision = pt.predict(p, x[:n])["decision"]
    assert r["samples"] == n and r["correct"] == int((decision == y[:n]).sum())
    assert r["accuracy"] == 100 * r["correct"] / n and r["accuracy"] > 85
    with pytest.raises(ValueError, match="test_samples: expected an int in 1..10000, got 0"):
        pt.evaluate(p, 0)


@needs_mnist
@pytest.mark.slow
@pytest.mark.parametrize("name", ["kheradpisheh2018_quick", "mozafari2019_quick", "mozafari2019"])
def test_evaluate_gives_the_registered_accuracy_on_the_whole_test_set(name):
    p = snnlab.pretrained(name)
    assert round(pt.evaluate(p)["accuracy"], 2) == p.accuracy


def test_mozafari_explains_its_decisions():
    p = snnlab.pretrained("mozafari2019_quick")
    times = torch.randint(0, 16, (6, 6, 28, 28), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    decision, feature, potential = p.network.explain(times)
    assert torch.equal(decision, p.network(times))
    fired = decision >= 0
    assert torch.equal(feature[fired] // 20, decision[fired]) and bool((potential[fired] > 0).all())
    pot = torch.nn.functional.conv2d(p.network.conv3_input(times).float(), p.network.conv3.weight, padding=2)
    assert torch.allclose(potential[fired], pot.flatten(1).amax(1)[fired])
