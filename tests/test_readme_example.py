"""The README's Python examples run as shown (the shell commands are tests/test_cli.py's)."""
import re
from pathlib import Path

import pytest

from snnlab.data import data_root

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_blocks():
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_a_python_example():
    assert any("SpikingConv" in b and "STDP" in b for b in _python_blocks())


@pytest.mark.skipif(not (data_root() / "MNIST" / "raw").is_dir(), reason="needs MNIST in data/MNIST/raw")
@pytest.mark.parametrize("block", _python_blocks())
def test_readme_python_block_runs(block, capsys):
    exec(compile(block, str(README), "exec"), {"__name__": "readme"})
    out = capsys.readouterr().out
    if "accuracy on 500 held-out digits" in block:  # the two-layer network learns: far above chance
        acc = float(re.search(r"digits: ([\d.]+)%", out).group(1))
        assert acc > 50.0
