"""benchmarks/bench.py at a tiny size: the table, the JSON, and --peers with the peers
missing or present (SpykeTorch from ../shared/peers beside a developer checkout)."""
import importlib.util
import json
import sys
from pathlib import Path

import pytest

from snnlab.data import data_root

ROOT = Path(__file__).resolve().parents[1]
SPYKETORCH = ROOT.parent / "shared" / "peers" / "spyketorch"
pytestmark = pytest.mark.skipif(not (data_root() / "MNIST" / "raw").is_dir(),
                                reason="MNIST not staged in data/MNIST/raw (see README, 'Data')")
PHASES = ["mz encoding", "mz layer1 STDP", "mz layer2 STDP", "mz layer3 R-STDP", "mz evaluation",
          "kh encoding", "kh layer1 STDP", "kh layer2 STDP", "kh features"]


def _run(tmp_path, *extra):
    spec = importlib.util.spec_from_file_location("bench", ROOT / "benchmarks" / "bench.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    # fresh seed-1 weights (no stored run needed): dense firing, but the same for every library
    missing = str(tmp_path / "none.pt")
    bench.main(["--samples", "20", "--plain-samples", "4", "--repeats", "1", "--device", "cpu",
                "--mz-weights", missing, "--kh-weights", missing, "--out", str(tmp_path), "--peers", *extra])
    return json.loads((tmp_path / "bench.json").read_text())


def test_missing_peers_are_skipped_with_how_to_get_them(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "SpykeTorch", None)  # None in sys.modules: the import fails
    monkeypatch.setitem(sys.modules, "spyker", None)
    out = _run(tmp_path)
    lines = capsys.readouterr().out.splitlines()
    skips = [ln for ln in lines if ": unavailable" in ln]
    assert len(skips) == 2 and all("skipped" in ln for ln in skips)
    assert skips[0].startswith("SpykeTorch: ") and "PYTHONPATH" in skips[0]
    assert skips[1].startswith("Spyker: ") and "pip install spyker==0.1.0" in skips[1]
    assert list(out["phases"]) == PHASES
    for name, row in out["phases"].items():
        assert row["spyketorch_per_s"] is None and row["spyker_per_s"] is None
        assert row["peer_per_s"] > 0 and row["fast_per_s"] > 0   # the earlier figures (constants) stand in
        line = next(ln for ln in lines if ln.startswith(name + " "))
        assert "Spyker" in line and "*" in line
    assert "constants" in out["meta"]["peers"]["SpykeTorch"] and "constants" in out["meta"]["peers"]["Spyker"]
    assert (tmp_path / "bench.png").is_file()


@pytest.mark.skipif(not SPYKETORCH.is_dir(), reason=f"SpykeTorch not found at {SPYKETORCH}")
def test_peers_are_measured_in_the_same_run(tmp_path, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(SPYKETORCH))
    have_spyker = importlib.util.find_spec("spyker") is not None
    out = _run(tmp_path)
    text = capsys.readouterr().out
    assert "measuring SpykeTorch" in text and ("measuring Spyker" in text) == have_spyker
    for row in out["phases"].values():
        assert row["spyketorch_per_s"] > 0
        assert row["fast_vs_spyketorch"] == pytest.approx(row["fast_per_s"] / row["spyketorch_per_s"])
        if have_spyker:
            assert row["spyker_per_s"] > 0 and str(row["spyker_batch"]) in row["spyker_per_s_by_batch"]
    assert "per-sample loops on the first 4 samples" in out["meta"]["peers"]["SpykeTorch"]
