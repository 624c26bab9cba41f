"""benchmarks/kheradpisheh_classifier.py at a small size: both solvers run and agree."""
import importlib.util
import json
from pathlib import Path

import pytest

from snnlab.data import data_root

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "results" / "kheradpisheh2018_quick" / "weights.pt"
needs_data = pytest.mark.skipif(not (data_root() / "MNIST" / "raw").is_dir() or not WEIGHTS.is_file(),
                                reason="needs MNIST in data/MNIST/raw and the stored quick network")


def _bench():
    spec = importlib.util.spec_from_file_location("kh_classifier", ROOT / "benchmarks" / "kheradpisheh_classifier.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@needs_data
def test_classifier_benchmark_solvers_agree(tmp_path, capsys):
    bench = _bench()
    runs = {}
    for solver in ("snnlab", "sklearn"):
        out = tmp_path / f"{solver}.json"
        assert bench.main(["--weights", str(WEIGHTS), "--train-samples", "1200", "--test-samples", "500",
                           "--solver", solver,
                           "--out", str(out)]) == 0
        runs[solver] = json.loads(out.read_text())
    a, b = runs["snnlab"], runs["sklearn"]
    assert a["svm_train_samples"] == 1200 and a["test_samples"] == 500
    assert list(a["validation"]) == list(b["validation"])  # the same walk of the C grid
    assert a["svm_c"] == b["svm_c"] and abs(a["test_accuracy"] - b["test_accuracy"]) <= 0.4
    assert "test" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        bench.main(["--weights", str(tmp_path / "missing.pt")])
