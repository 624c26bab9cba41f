"""Nothing lost, nothing silently wrong: atomic files with SHA-256 sidecars, run-folder locks,
interrupted runs, and a run killed or corrupted at every phase."""
import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest
import torch

from snnlab import integrity, io
from snnlab.analysis import read_results
from snnlab.data import data_root
from snnlab.integrity import FolderBusyError, FolderLock, IntegrityError
from snnlab.models.mozafari2019 import Mozafari2019, Mozafari2019Config
from snnlab.runs import Run, check_fresh_start, interrupted_run, write_results

needs_mnist = pytest.mark.skipif(not (data_root() / "MNIST" / "raw").is_dir(), reason="MNIST not staged")


def flip(path, at=None):
    """Flip one bit of the byte in the middle of ``path`` (or at ``at``)."""
    blob = bytearray(path.read_bytes())
    i = len(blob) // 2 if at is None else at
    blob[i] ^= 0x01
    path.write_bytes(bytes(blob))


def test_sidecar_verifies_and_one_flipped_byte_is_refused(tmp_path):
    p = tmp_path / "x.bin"
    digest = integrity.atomic_write(p, lambda f: f.write(b"0123456789" * 100))
    assert integrity.verify(p) == digest == integrity.sha256_file(p)
    assert (tmp_path / "x.bin.sha256").read_text() == f"{digest}  x.bin\n"  # sha256sum -c format
    flip(p)
    with pytest.raises(IntegrityError, match="x.bin is corrupted"):
        integrity.verify(p)
    integrity.atomic_write(p, lambda f: f.write(b"new"))  # a rewrite replaces the broken file
    assert integrity.verify(p) and p.read_bytes() == b"new"
    (tmp_path / "x.bin.sha256").write_text("not a hash  x.bin\n")
    with pytest.raises(IntegrityError, match="not a SHA-256 list"):
        integrity.verify(p)
    (tmp_path / "legacy.pt").write_bytes(b"from before sidecars")
    assert integrity.verify(tmp_path / "legacy.pt") is None  # loaded unchecked
    assert sorted(f.name for f in tmp_path.iterdir()) == ["legacy.pt", "x.bin", "x.bin.sha256"]  # no temporaries


@pytest.mark.parametrize("crash_at", [1, 2, 3])
def test_a_crash_at_any_rename_leaves_a_complete_file_that_verifies(tmp_path, monkeypatch, crash_at):
    # the renames of a rewrite: sidecar listing old and new, the file, the sidecar listing new
    p = tmp_path / "w.pt"
    integrity.atomic_write(p, lambda f: f.write(b"old" * 1000))
    real, calls = os.replace, []

    def replace(src, dst):
        calls.append(dst)
        if len(calls) == crash_at:
            raise KeyboardInterrupt  # dies here: the rename does not happen
        real(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(KeyboardInterrupt):
        integrity.atomic_write(p, lambda f: f.write(b"new" * 1000))
    monkeypatch.setattr(os, "replace", real)
    assert len(calls) == crash_at
    assert p.read_bytes() == (b"old" if crash_at <= 2 else b"new") * 1000
    integrity.verify(p)
    assert not list(tmp_path.glob(".*.tmp"))


def test_load_model_and_read_results_refuse_corrupted_files(tmp_path):
    io.save_model(Mozafari2019(Mozafari2019Config(features=(4, 8, 10)), seed=1), tmp_path / "weights.pt")
    write_results(tmp_path, {"test_accuracy": 91.5})
    assert read_results(tmp_path) == {"test_accuracy": 91.5}
    flip(tmp_path / "weights.pt")
    with pytest.raises(IntegrityError, match="weights.pt is corrupted"):
        io.load_model(tmp_path / "weights.pt")
    (tmp_path / "results.json").write_text(json.dumps({"test_accuracy": 99.5}, indent=2))  # same size
    with pytest.raises(IntegrityError, match="results.json is corrupted"):
        read_results(tmp_path)


def test_corrupted_checkpoint_is_refused_and_left_as_it_is(tmp_path):
    Run(tmp_path).save_checkpoint({"config": {}, "seed": 0, "model": {"w": torch.ones(100)}, "state": {"done": [1]}})
    flip(tmp_path / "checkpoint.pt")
    before = (tmp_path / "checkpoint.pt").read_bytes()
    with pytest.raises(IntegrityError, match="resume: checkpoint .*checkpoint.pt is corrupted"):
        Run(tmp_path, resume=True).check_resume(Mozafari2019Config(), 0)
    assert (tmp_path / "checkpoint.pt").read_bytes() == before


def test_interrupted_run_is_refused_unless_resumed_or_overwritten(tmp_path):
    run = Run(tmp_path)
    run.save_checkpoint({"epoch": 1})
    assert interrupted_run(tmp_path) == "a checkpoint and no results.json"
    run.write_results({"acc": 1})
    assert interrupted_run(tmp_path) is None  # the results name this checkpoint
    run.save_checkpoint({"epoch": 2})  # a resumed run went on, then stopped
    assert interrupted_run(tmp_path) == "its checkpoint is not the one its results.json was computed from"
    run.close()
    with pytest.raises(ValueError, match="holds an interrupted run .* --resume .* --overwrite"):
        Run(tmp_path)
    assert (tmp_path / "checkpoint.pt").is_file()  # nothing deleted
    Run(tmp_path, resume=True).close()
    assert check_fresh_start(tmp_path, overwrite=True) is True
    assert not (tmp_path / "checkpoint.pt").exists() and not (tmp_path / "checkpoint.pt.sha256").exists()


def test_finished_run_from_before_sidecars_is_told_by_modification_time(tmp_path):
    torch.save({"epoch": 1}, tmp_path / "checkpoint.pt")
    (tmp_path / "results.json").write_text("{}")
    os.utime(tmp_path / "checkpoint.pt", ns=(10**18, 10**18))
    os.utime(tmp_path / "results.json", ns=(2 * 10**18, 2 * 10**18))
    assert interrupted_run(tmp_path) is None
    Run(tmp_path).close()  # a finished run is replaced, as before
    assert not (tmp_path / "checkpoint.pt").exists()


def test_resume_without_a_checkpoint_says_so_in_one_line(tmp_path):
    from snnlab.models.kheradpisheh2018 import Kheradpisheh2018

    said = []
    with Run(tmp_path, resume=True) as run:
        state = run.restore(Kheradpisheh2018(seed=1), None, 1, {"done": [0, 0]}, log=said.append)
    assert state == {"done": [0, 0], "sessions": [run.started]}
    assert said == [f"resume: no checkpoint in {tmp_path}; starting from scratch"]
    with pytest.raises(ValueError, match="seed: expected an int in 0..4294967295"):
        Kheradpisheh2018(seed=2 ** 64)


def test_leftover_temporaries_of_a_killed_writer_are_removed_under_the_lock(tmp_path):
    (tmp_path / ".checkpoint.pt.k3j2.tmp").write_bytes(b"x" * 100)
    (tmp_path / "keep.tmp").write_bytes(b"")  # not ours
    Run(tmp_path).close()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".lock", "keep.tmp"]


def _hold_lock(folder):
    code = textwrap.dedent(f"""
        import sys, time
        from snnlab.integrity import FolderLock
        FolderLock({str(folder)!r}).acquire()
        print("locked", flush=True)
        time.sleep(60)
    """)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)
    assert child.stdout.readline().strip() == "locked"
    return child


def test_folder_lock_refuses_a_second_process_and_dies_with_its_holder(tmp_path):
    child = _hold_lock(tmp_path)
    try:
        with pytest.raises(FolderBusyError, match=f"in use by another run \\(pid {child.pid}\\)"):
            Run(tmp_path)
    finally:
        child.send_signal(signal.SIGKILL)  # kill -9: no cleanup runs in the holder
        child.wait()
    with FolderLock(tmp_path), Run(tmp_path):  # no stale lock; re-entrant within a process
        pass
    assert not integrity._HELD


# --- a small run killed (kill -9) at every phase, or with one byte flipped in each file ----------

TINY_ARGV = ["reproduce", "mozafari2019", "--epochs", "1,1,2", "--train-samples", "40,40,100", "--test-samples", "100",
             "--set", "validation_samples=100", "--set", "adaptive_block=50", "--seed", "3", "--device", "cpu",
             "--no-progress"]

DRIVER = """
import os, signal, sys
from snnlab import cli
from snnlab.models import mozafari2019

point, argv = sys.argv[1], sys.argv[2:]
die = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)  # kill -9: nothing runs after it
if point == "encoding":
    mozafari2019.encoded_mnist = die
else:  # the n-th rename of the run: every state a file can be in between two renames
    real, calls = os.replace, []
    def replace(src, dst):
        calls.append(dst)
        if len(calls) == int(point):
            die()
        return real(src, dst)
    os.replace = replace
cli.main(argv)
"""


def _snapshot(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.name != ".lock"}


def _same_result(folder, ref):
    """The run in ``folder`` ended exactly as the uninterrupted one in ``ref``."""
    for name in ("weights.pt", "best_weights.pt"):
        a, b = io.load_model(folder / name).state_dict(), io.load_model(ref / name).state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    strip = lambda r: [{k: v for k, v in h.items() if k != "seconds"} for h in r["history"]]  # noqa: E731
    got, want = read_results(folder), read_results(ref)
    assert strip(got) == strip(want) and got["test_accuracy"] == want["test_accuracy"]
    assert not list(folder.glob(".*.tmp"))  # the killed writer's temporaries are gone
    for side in folder.glob("*.sha256"):
        assert integrity.verify(folder / side.name[:-len(".sha256")])


@pytest.mark.slow
@needs_mnist
def test_kill_9_at_every_phase_then_resume_gives_the_uninterrupted_run(tmp_path, capsys, monkeypatch):
    from snnlab import cli

    ref = tmp_path / "ref"
    real, renames = os.replace, []
    monkeypatch.setattr(os, "replace", lambda src, dst: (renames.append(os.path.basename(dst)), real(src, dst))[1])
    assert cli.main(TINY_ARGV + ["--out", str(ref)]) == 0
    monkeypatch.setattr(os, "replace", real)
    # conv1, conv2, conv3 x 2 checkpoints; weights, best weights, curves, results
    ck = [i + 1 for i, name in enumerate(renames) if name == "checkpoint.pt"]  # 1-based rename numbers
    assert len(ck) == 4 and renames[-2:] == ["results.json.sha256", "results.json"]
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    points = ["encoding",                        # before any file
              ck[0],                             # conv1 trained: its checkpoint's sidecar in place, not the file
              ck[1],                             # conv2: the sidecar lists old and new, the file is conv1's
              ck[1] + 1,                         # conv2: the file replaced, the sidecar still lists both
              ck[3] - 1,                         # conv3's 2nd epoch: only its temporary files written
              renames.index("weights.pt") + 1,   # weights: the sidecar in place, not the file
              renames.index("curves.png") + 1,   # weights written, curves not
              len(renames)]                      # results: the sidecar (naming the checkpoint) only
    for point in map(str, points):
        out = tmp_path / f"killed-{point}"
        child = subprocess.run([sys.executable, str(driver), point, *TINY_ARGV, "--out", str(out)], env=env,
                               capture_output=True, text=True)
        assert child.returncode == -signal.SIGKILL, (point, child.stderr[-2000:])
        if (out / "checkpoint.pt").exists():  # never started over silently
            with pytest.raises(SystemExit) as stop:
                cli.main(TINY_ARGV + ["--out", str(out)])
            assert stop.value.code == 2 and "holds an interrupted run" in capsys.readouterr().err
        assert cli.main(TINY_ARGV + ["--out", str(out), "--resume"]) == 0, point
        _same_result(out, ref)


@needs_mnist
def test_one_flipped_byte_in_any_run_file_is_refused_or_rewritten_identically(tmp_path, capsys):
    import shutil

    from snnlab import cli

    ref = tmp_path / "ref"
    assert cli.main(TINY_ARGV + ["--out", str(ref)]) == 0
    kinds = sorted(p.name for p in ref.iterdir() if p.name != ".lock")
    assert kinds == ["best_weights.pt", "best_weights.pt.sha256", "checkpoint.pt", "checkpoint.pt.sha256", "curves.png",
                     "results.json", "results.json.sha256", "weights.pt", "weights.pt.sha256"]
    # the checkpoint (or its hash): resume stops with one line, nothing is written
    for name in ("checkpoint.pt", "checkpoint.pt.sha256"):
        out = tmp_path / name
        shutil.copytree(ref, out)
        flip(out / name, at=10 if name.endswith(".sha256") else None)
        before = _snapshot(out)
        # without --resume too: the checkpoint no longer matches the one the results name
        for extra in (["--resume"], []) if name == "checkpoint.pt" else (["--resume"],):
            with pytest.raises(SystemExit) as stop:
                cli.main(TINY_ARGV + ["--out", str(out), *extra])
            err = capsys.readouterr().err
            assert stop.value.code == 2 and err.count("\n") == 1, err
            assert ("corrupted" if extra else "holds an interrupted run") in err
            assert _snapshot(out) == before
    # any output file (or its hash): resuming the finished run rewrites them, bit for bit
    out = tmp_path / "outputs"
    shutil.copytree(ref, out)
    for name in kinds:
        if not name.startswith("checkpoint"):
            flip(out / name, at=10 if name.endswith(".sha256") else None)
    with pytest.raises(IntegrityError):
        io.load_model(out / "weights.pt")
    assert cli.main(TINY_ARGV + ["--out", str(out), "--resume"]) == 0
    _same_result(out, ref)
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@needs_mnist
def test_results_name_the_command_commit_and_every_session(tmp_path):
    import shlex

    from snnlab import cli
    from snnlab.runs import git_state

    out = tmp_path / "run"
    first = TINY_ARGV + ["--out", str(out)]
    assert cli.main(first) == 0
    res = read_results(out)
    commit, clean = git_state()
    assert res["command"] == shlex.join(["snnlab", *first])
    assert (res["commit"], res["clean_tree"]) == (commit, clean)
    assert [s["command"] for s in res["sessions"]] == [res["command"]]
    # continued with more R-STDP epochs: both processes are listed, the last one wrote the results
    more = [*TINY_ARGV[:3], "1,1,3", *TINY_ARGV[4:], "--out", str(out), "--resume"]
    assert cli.main(more) == 0
    res = read_results(out)
    assert [s["command"] for s in res["sessions"]] == [shlex.join(["snnlab", *first]), shlex.join(["snnlab", *more])]
    assert res["command"] == shlex.join(["snnlab", *more]) and len(res["history"]) == 3
    assert all(s["started"] <= res["finished"] for s in res["sessions"])
