"""benchmarks/jobs.py at a tiny size: a real `snnlab reproduce` in its own process, timed."""
import importlib.util
import json
from pathlib import Path

import pytest

from snnlab.data import data_root

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(not (data_root() / "MNIST" / "raw").is_dir(),
                                reason="MNIST not staged in data/MNIST/raw (see README, 'Data')")


def test_jobs_times_a_tiny_run_and_tabulates_its_phases(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("jobs", ROOT / "benchmarks" / "jobs.py")
    jobs = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(jobs)
    out = tmp_path / "jobs.json"
    assert jobs.main(["kheradpisheh2018", "--repeats", "1", "--json", str(out), "--keep", str(tmp_path / "runs"),
                      "--", "--train-samples", "50,50", "--test-samples", "50",
                      "--set", "svm_train_samples=120"]) == 0
    rec = json.loads(out.read_text())
    run = rec["runs"][0]
    assert {"conv1 STDP", "conv2 STDP", "svm"} <= set(run["phases_s"])
    assert run["wall_s"] >= sum(run["phases_s"].values()) > 0  # the process holds every phase
    assert 0 <= run["test_accuracy"] <= 100
    assert (tmp_path / "runs" / "run1" / "results.json").is_file()
    text = capsys.readouterr().out
    assert "| conv2 STDP |" in text and "end to end" in text
    with pytest.raises(SystemExit, match="failed"):
        jobs.main(["kheradpisheh2018", "--repeats", "1", "--", "--epochs", "banana"])
