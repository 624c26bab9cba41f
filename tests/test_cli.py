"""The ``snnlab`` command as a user types it: one-line errors with exit code 2 before any
work, Ctrl-C, folders in use or holding an interrupted run, and every command of the README."""
import gzip
import os
import re
import shlex
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from snnlab import cli, integrity
from snnlab import data as sd
from snnlab.models import kheradpisheh2018 as kh
from snnlab.models import kulkarni2018 as k18
from snnlab.models import mozafari2019 as mz
from snnlab.runs import Run

REPO = Path(__file__).resolve().parents[1]
SRC = sd.data_root() / "MNIST" / "raw"
HAVE_MNIST = all((SRC / n).is_file() or (SRC / (n + ".gz")).is_file() for n in sd.MNIST_FILES)
needs_mnist = pytest.mark.skipif(not HAVE_MNIST, reason=f"MNIST not staged in {SRC}")


def fails(argv, capsys, code=2):
    """Run the command; assert it exits with ``code`` and one line on stderr; return that line."""
    with pytest.raises(SystemExit) as stop:
        cli.main(argv)
    err = capsys.readouterr().err.strip()
    assert stop.value.code == code, err
    assert err and "\n" not in err and "Traceback" not in err, err
    return err


@pytest.fixture
def no_run(monkeypatch):
    """Models whose reproduce() must not be reached (the command refuses before any work)."""
    for mod in (mz, kh, k18):
        monkeypatch.setattr(mod, "reproduce", lambda *a, **k: pytest.fail("work started"))


@pytest.fixture
def recorded(monkeypatch):
    """Models whose reproduce() only records what the command passed."""
    calls = []

    def record(cfg, out, **kw):
        calls.append((cfg, out, kw))
        return {"test_accuracy": 50.0, "paper_accuracy": 99.0}

    for mod in (mz, kh, k18):
        monkeypatch.setattr(mod, "reproduce", record)
    return calls


@pytest.fixture
def offline(monkeypatch):
    import torchvision

    def refuse(*a, **k):
        raise RuntimeError("network unreachable")

    monkeypatch.setattr(torchvision.datasets.MNIST, "download", refuse)


@pytest.mark.parametrize("setting, message", [
    ("kernels=[5,3,50]", "kernels: [5, 3, 50] do not fit 28x28 digits"),
    ("adaptive_block=0", "adaptive_block: expected an int >= 1, got 0"),
    ("thresholds=[15,", "--set thresholds: '[15,' is not a JSON value"),
    ("test_samples=\"100\"", "test_samples: expected an int in 1..10000, got '100'"),
    ("features=null", "features: expected a list of 3 values, got None"),
    ("rstdp_mode=fast", "rstdp_mode: expected 'exact' or 'batched', got 'fast'"),
    ("conv2_output_threshold=[1]", "conv2_output_threshold: expected None or a positive number"),
])
def test_bad_set_values_are_refused_before_any_work(setting, message, capsys, no_run, tmp_path):
    err = fails(["reproduce", "mozafari2019", "--quick", "--out", str(tmp_path), "--set", setting], capsys)
    assert message in err
    assert not list(tmp_path.iterdir())  # not even a lock file


@pytest.mark.parametrize("argv, message", [
    (["--device", "foo"], "device: expected 'auto', 'cpu', 'cuda' or 'cuda:N', got 'foo'"),
    (["--device", "mps"], "got 'mps'"),
    (["--device", "meta"], "got 'meta'"),
    (["--seed", str(2 ** 64)], "--seed: expected an integer in 0..4294967295"),
    (["--seed", "-1"], "--seed: expected an integer in 0..4294967295"),
    (["--resume", "--overwrite"], "not allowed with argument"),
    (["--train-samples", "100,200,300"], "--train-samples: expected 2 comma-separated values"),
])
def test_bad_options_exit_2_with_one_line(argv, message, capsys, no_run, tmp_path):
    assert message in fails(["reproduce", "kheradpisheh2018", "--out", str(tmp_path), *argv], capsys)


def test_kulkarni_takes_epochs_and_sample_counts_and_names_no_missing_field(capsys, recorded, tmp_path, monkeypatch):
    monkeypatch.setattr(sd, "ensure_mnist", lambda *a, **k: None)
    assert cli.main(["reproduce", "kulkarni2018", "--quick", "--epochs", "3", "--train-samples", "500",
                     "--test-samples", "200", "--out", str(tmp_path), "--no-progress"]) == 0
    cfg = recorded[0][0]
    assert (cfg.epochs, cfg.n_train, cfg.n_test, cfg.cnn_samples) == (3, 500, 200, 6000)
    assert "snnlab reproduce kulkarni2018 (quick) on" in capsys.readouterr().out
    assert "expected one value" in fails(["reproduce", "kulkarni2018", "--epochs", "3,4", "--out", str(tmp_path)], capsys)
    assert "n_kernels, kernel_size" in fails(["reproduce", "kulkarni2018", "--set", "kernel_size=5",
                                              "--out", str(tmp_path)], capsys)


def test_ctrl_c_says_how_to_continue_and_releases_the_folder(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(sd, "ensure_mnist", lambda *a, **k: None)

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(mz, "reproduce", interrupted)
    err = fails(["reproduce", "mozafari2019", "--out", str(tmp_path)], capsys, code=130)
    assert err == f"snnlab: interrupted; continue with --resume (--out {tmp_path})"
    assert not integrity._HELD  # the lock is released


def test_faults_met_during_the_run_are_one_line(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(sd, "ensure_mnist", lambda *a, **k: None)

    def denied(cfg, out, **kw):
        raise PermissionError(13, "Permission denied", str(Path(out) / "checkpoint.pt"))

    monkeypatch.setattr(kh, "reproduce", denied)
    err = fails(["reproduce", "kheradpisheh2018", "--out", str(tmp_path)], capsys)
    assert err == f"snnlab: error: {tmp_path / 'checkpoint.pt'}: Permission denied"


@pytest.fixture
def data_root(tmp_path, monkeypatch):
    """An empty data root that the command uses (SNNLAB_DATA)."""
    root = tmp_path / "data"
    (root / "MNIST" / "raw").mkdir(parents=True)
    monkeypatch.setenv("SNNLAB_DATA", str(root))
    return root / "MNIST" / "raw"


def _stage(raw, copy=()):
    for name in sd.MNIST_FILES:
        src = SRC / name
        if name in copy or not src.is_file():
            with (open(src, "rb") if src.is_file() else gzip.open(SRC / (name + ".gz"))) as f:
                (raw / name).write_bytes(f.read())
        else:
            (raw / name).symlink_to(src)


@needs_mnist
def test_corrupted_mnist_is_one_line(capsys, no_run, data_root, tmp_path):
    _stage(data_root, copy=["t10k-labels-idx1-ubyte"])
    path = data_root / "t10k-labels-idx1-ubyte"
    blob = bytearray(path.read_bytes())
    blob[777] ^= 4
    path.write_bytes(bytes(blob))
    err = fails(["reproduce", "kheradpisheh2018", "--out", str(tmp_path / "run")], capsys)
    assert f"{path} is corrupted or truncated: SHA-256" in err


def test_missing_mnist_offline_is_one_line_naming_the_missing_files(capsys, no_run, offline, data_root, tmp_path):
    (data_root / "train-labels-idx1-ubyte").write_bytes(b"")
    err = fails(["reproduce", "kheradpisheh2018", "--out", str(tmp_path / "run")], capsys)
    assert f"MNIST files missing in {data_root}: train-images-idx3-ubyte, t10k-images-idx3-ubyte, " \
           "t10k-labels-idx1-ubyte (download failed: network unreachable)" in err
    assert "train-labels-idx1-ubyte," not in err


@needs_mnist
def test_directory_in_place_of_a_data_file_is_named(capsys, no_run, data_root, tmp_path):
    _stage(data_root)
    name = "t10k-images-idx3-ubyte"
    (data_root / name).unlink()
    (data_root / name).mkdir()
    err = fails(["reproduce", "kheradpisheh2018", "--out", str(tmp_path / "run")], capsys)
    assert f"{data_root / name} is a directory, where the file {name} belongs; remove it" in err


@needs_mnist
def test_unreadable_data_file_is_one_line(capsys, no_run, data_root, tmp_path, monkeypatch):
    _stage(data_root, copy=list(sd.MNIST_FILES))  # new files: verified again (not remembered)

    def denied(path):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(sd, "_sha256", denied)
    err = fails(["reproduce", "kheradpisheh2018", "--out", str(tmp_path / "run")], capsys)
    assert re.fullmatch(rf"snnlab: error: {re.escape(str(data_root))}/\S+-ubyte: Permission denied", err)


def test_unwritable_out_is_one_line(capsys, no_run, tmp_path):
    (tmp_path / "file").write_text("")
    assert "out: cannot write to" in fails(["reproduce", "kheradpisheh2018", "--out", str(tmp_path / "file" / "x")],
                                           capsys)


@needs_mnist
def test_interrupted_run_is_refused_then_overwritten_on_request(capsys, recorded, tmp_path):
    with Run(tmp_path) as run:
        run.save_checkpoint({"state": {"done": [1, 0]}})
    err = fails(["reproduce", "kheradpisheh2018", "--out", str(tmp_path)], capsys)
    assert err == (f"snnlab: error: out: {tmp_path} holds an interrupted run (a checkpoint and no results.json); "
                   "continue it with --resume (resume=True), or start over with --overwrite (or delete its checkpoint.pt)")
    assert (tmp_path / "checkpoint.pt").is_file() and not recorded
    assert cli.main(["reproduce", "kheradpisheh2018", "--out", str(tmp_path), "--overwrite", "--no-progress"]) == 0
    assert f"--overwrite: the interrupted run in {tmp_path} is discarded" in capsys.readouterr().out
    assert not (tmp_path / "checkpoint.pt").exists() and len(recorded) == 1


@needs_mnist
def test_corrupted_checkpoint_stops_resume_and_nothing_is_written(capsys, no_run, tmp_path):
    with Run(tmp_path) as run:
        run.save_checkpoint({"config": {}, "seed": 1, "model": {"w": torch.zeros(1000)}, "state": {"done": [1, 0]}})
    path = tmp_path / "checkpoint.pt"
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 1
    path.write_bytes(bytes(blob))
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    err = fails(["reproduce", "kheradpisheh2018", "--out", str(tmp_path), "--resume"], capsys)
    assert f"resume: checkpoint {path} is corrupted" in err
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_second_run_into_a_folder_in_use_exits_2_naming_it(capsys, no_run, tmp_path):
    code = textwrap.dedent(f"""
        import time
        from snnlab.integrity import FolderLock
        FolderLock({str(tmp_path)!r}).acquire()
        print("locked", flush=True)
        time.sleep(60)
    """)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert child.stdout.readline().strip() == "locked"
        err = fails(["reproduce", "mozafari2019", "--out", str(tmp_path)], capsys)
        assert err == (f"snnlab: error: out: {tmp_path} is in use by another run (pid {child.pid}); "
                       "wait for it to finish, or choose another --out")
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()


# --- every command of the README, at a small size ------------------------------------------

#: sizes appended to each README command of a model (later options win; --out is per command)
SMALL = {
    "kheradpisheh2018": ["--epochs", "1,1", "--train-samples", "40,40", "--test-samples", "100",
                         "--set", "svm_train_samples=100", "--set", "svm_c_grid=[0.003]"],
    "mozafari2019": ["--epochs", "1,1,1", "--train-samples", "40,40,100", "--test-samples", "100",
                     "--set", "validation_samples=100", "--set", "adaptive_block=100"],
    "kulkarni2018": ["--epochs", "1", "--train-samples", "60", "--test-samples", "40", "--set", "cnn_samples=300",
                     "--set", "n_steps=200", "--set", "hidden_batch=50"],
}


def readme_commands():
    """Every command of the README's shell blocks and inline ``snnlab ...`` spans, split at ``&&``."""
    text = (REPO / "README.md").read_text()
    lines = []
    for lang, block in re.findall(r"^```(\w*)\n(.*?)^```", text, flags=re.S | re.M):
        if lang in ("bash", "sh", "shell"):
            lines += block.splitlines()
        elif lang != "python":  # other blocks (file listings) hold no command; Python examples
            assert "snnlab " not in block  # are run by tests/test_readme_example.py
    lines += re.findall(r"`((?:\.venv/bin/)?snnlab [^`]+)`", text)
    out = []
    for line in lines:
        line = re.split(r"\s{2,}#", line)[0].strip()  # drop trailing comments
        if line and not line.startswith("#"):
            out += [seg.strip() for seg in line.split("&&")]
    return out


def _synopsis_to_argv(words, out):
    # "[--seed 1] [--device auto|cpu|cuda] [--out DIR] [--test-samples N]": every optional
    # part given, the first alternative, placeholders filled in
    argv = []
    for w in words:
        w = w.strip("[]")
        if "|" in w:
            w = w.split("|")[0]
        if w == "DIR":
            w = str(out)
        elif w == "N":
            w = "100"
        argv.append(w)
    return argv


def _pip_pins(segment):
    return dict(re.findall(r"\b(torch|torchvision)==([\w.]+)", segment))


def test_readme_lists_only_commands_this_test_knows():
    # every README command is either run below (snnlab) or checked against pyproject.toml and
    # .ci/run; a new kind of command fails here until it is covered
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    ci = (REPO / ".ci" / "run").read_text()
    extras = set(project["optional-dependencies"])
    markers = [m.split(":")[0] for m in
               tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]["markers"]]
    snnlab_commands = 0
    for seg in readme_commands():
        words = shlex.split(seg)
        env = [w for w in words if re.fullmatch(r"[A-Z_]+=\S*", w)]
        words = words[len(env):]
        prog = words[0]
        if prog.endswith("snnlab"):
            snnlab_commands += 1
        elif prog.endswith("pip"):
            assert words[1] == "install"
            for extra in re.findall(r"\.\[([\w,]+)\]", seg):
                assert set(extra.split(",")) <= extras, seg
            pins = _pip_pins(seg)
            assert pins == _pip_pins(ci) or not pins, seg  # the same pins as CI
            for name, version in pins.items():
                spec = next(d for d in project["dependencies"] if re.match(rf"{name}\b", d))
                assert f"<={version}" in spec, (seg, spec)  # the pinned version is allowed
        elif prog == "python3.11":
            assert words[1:] == ["-m", "venv", ".venv"] and "-m venv .venv" in ci
        elif prog.endswith("python") and words[1:3] == ["-m", "pytest"]:
            if "--nbval-lax" in words:
                assert seg in ci, "the README's test command must be the one .ci/run runs"
            args = words[3:]
            for path in [w for w in args if "/" in w]:
                assert (REPO / path).exists(), seg
            if "-m" in args:
                assert args[args.index("-m") + 1] in markers, seg
        elif prog.endswith("jupyter"):
            assert words[1] == "lab" and any(d.startswith("jupyterlab") for d in project["optional-dependencies"]["notebooks"])
        elif prog == "apt-get":
            assert "chromium" in words and "chromium" in ci
        elif prog.endswith("mkdocs"):  # the strict build is what tests/test_docs.py runs
            assert words[1:] == ["build", "--strict"] and (REPO / "mkdocs.yml").is_file()
            assert "build\", \"--strict\"" in (REPO / "tests" / "conftest.py").read_text().replace("'", '"')
        elif prog.endswith("python") and words[1:3] == ["-m", "http.server"]:  # serves the built site
            assert "-d" in words and words[words.index("-d") + 1] == "site" and "127.0.0.1" in words
        else:
            pytest.fail(f"README command not covered by tests: {seg!r}")
    assert snnlab_commands >= 6


@needs_mnist
def test_every_readme_snnlab_command_runs_at_a_small_size(tmp_path, capsys):
    ran = set()
    for i, seg in enumerate(c for c in readme_commands() if shlex.split(c)[0].endswith("snnlab")):
        out = tmp_path / f"run{i}"
        words = _synopsis_to_argv(shlex.split(seg)[1:], out)
        model = words[1]
        argv = words + SMALL[model] + ["--out", str(out), "--no-progress"]
        assert cli.main(argv) == 0, seg
        printed = capsys.readouterr().out
        assert "done in" in printed and f"results in {out}/results.json" in printed, seg
        if "--resume" in words:  # a fresh folder: says so, then starts from scratch
            assert f"resume: no checkpoint in {out}; starting from scratch" in printed
        for name in ("results.json", "weights.pt"):
            assert integrity.verify(out / name), (seg, name)  # written with its SHA-256
        ran.add(seg)
    assert len(ran) >= 6
