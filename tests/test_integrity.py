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
from snnlab.integrity import FolderBusyError, FolderLock, IntegrityError
from snnlab.models.mozafari2019 import Mozafari2019, Mozafari2019Config
from snnlab.runs import Run, check_fresh_start, interrupted_run, write_results


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
    assert interrupted_run(tmp_path) == "its checkpoint is newer than its results.json"
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
