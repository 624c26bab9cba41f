"""benchmarks/mozafari_leads.py at a tiny size: two leads trained, summarised and exported."""
import importlib.util
import json
from pathlib import Path

import pytest

from snnlab.data import data_root

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(not (data_root() / "MNIST" / "raw").is_dir(),
                                reason="MNIST not staged in data/MNIST/raw (see README, 'Data')")
TINY = ["--set", "train_samples=[100,100,100]", "--set", "validation_samples=50", "--set", "test_samples=50"]


@pytest.fixture(scope="module")
def leads():
    spec = importlib.util.spec_from_file_location("mozafari_leads", ROOT / "benchmarks" / "mozafari_leads.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_leads_train_summarise_and_export(leads, tmp_path, capsys):
    out = tmp_path / "runs"
    assert leads.main(["--leads", "base,dropout", "--epochs", "2", "--out", str(out), *TINY]) == 0
    # the two leads share one conv1/conv2, trained once, in a folder named after the changed fields
    assert len(list(out.glob("layers-*-s1"))) == 1
    capsys.readouterr()
    assert leads.main(["--summary", "--out", str(out)]) == 0
    table = capsys.readouterr().out
    # the runs, then dropout against base (per seed, then per lead); base is no lead of its own
    assert table.count("\n| base-") == 1 and table.count("\n| dropout-") == 3
    assert leads.main(["--export", str(tmp_path / "export"), "--out", str(out)]) == 0
    rec = json.loads((tmp_path / "export" / "leads.json").read_text())
    runs = {r["lead"].split("-", 1)[0]: r for r in rec["runs"]}
    assert set(runs) == {"base", "dropout"}
    assert runs["dropout"]["changes"] == {"rstdp_dropout": 0.5} and runs["base"]["changes"] == {}
    for r in runs.values():
        assert len(r["validation"]) == len(r["test"]) == len(r["train"]) == 2
        assert all(0 <= v <= 100 for v in r["validation"] + r["test"])
        assert r["config"]["validation_samples"] == 50
    assert {row["lead"].split("-", 1)[0] for row in rec["summary"]} == {"base", "dropout"}
    assert all(r["overrides"] == {"train_samples": [100, 100, 100], "validation_samples": 50, "test_samples": 50}
               for r in runs.values())
    # a lead with more epochs continues its own run: one more epoch, no retraining
    assert leads.main(["--leads", "base", "--epochs", "3", "--out", str(out), *TINY]) == 0
    assert "epochs done per layer [2, 4, 2]" in capsys.readouterr().out
    assert len(list(out.glob("base-*-s1"))) == 1
    res = json.loads(next(out.glob("base-*-s1")).joinpath("results.json").read_text())
    assert len(res["history"]) == 3 and res["command"].startswith("python benchmarks/mozafari_leads.py --leads base")
    # the verdict pairs dropout (2 epochs) with base of the same seed and fields at epoch 2, not 3
    assert leads.main(["--export", str(tmp_path / "export"), "--out", str(out)]) == 0
    rec = json.loads((tmp_path / "export" / "leads.json").read_text())
    runs = {r["lead"].split("-", 1)[0]: r for r in rec["runs"]}
    assert len(runs["base"]["validation"]) == 3
    [pair] = rec["paired"]
    assert pair["lead"].startswith("dropout-") and pair["seed"] == 1 and pair["epochs"] == 2
    base2 = sum(runs["base"]["validation"][:2]) / 2
    assert abs(pair["base, same seed and epoch"] - base2) < 0.01
    assert abs(pair["difference"] - (sum(runs["dropout"]["validation"]) / 2 - base2)) < 0.01
    [lead] = rec["by_lead"]
    assert lead["seeds"] == [1] and lead["mean difference"] == pair["difference"]
    capsys.readouterr()
    assert leads.main(["--summary", "--out", str(out)]) == 0
    assert "| mean difference |" in capsys.readouterr().out


def test_leads_reject_bad_arguments(leads, tmp_path):
    with pytest.raises(SystemExit):
        leads.main(["--leads", "base,banana", "--out", str(tmp_path)])
    with pytest.raises(SystemExit):
        leads.main(["--leads", "base", "--set", "no_such_field=1", "--out", str(tmp_path)])
    with pytest.raises(SystemExit):
        leads.main(["--summary", "--also", "base-only", "--out", str(tmp_path)])
    with pytest.raises(SystemExit):  # a bad value, refused before any work
        leads.main(["--leads", "base", "--set", "test_samples=-1", "--out", str(tmp_path)])
    with pytest.raises(SystemExit):
        leads.main(["--summary", "--set", "test_samples=5", "--out", str(tmp_path)])
    assert not any(tmp_path.iterdir())
