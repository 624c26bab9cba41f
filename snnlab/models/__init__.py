"""Reproduction models: each module holds a network, its config (published defaults and a
``quick`` preset) and a ``reproduce(config, out_dir, device, seed, resume, progress)``
function that runs the whole protocol and writes a results folder.
"""
import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Entry:
    """A registered model: its module, its config class and who keeps its checkpoints
    (``"runs"``: :class:`snnlab.runs.Run`; ``"own"``: the module, with its ``check_resume``)."""

    module: str
    config: str
    checkpoints: str = "runs"


#: model name -> its entry (modules are imported lazily: each pulls in its own dependencies)
MODELS = {
    "kheradpisheh2018": Entry("snnlab.models.kheradpisheh2018", "Kheradpisheh2018Config"),
    "mozafari2019": Entry("snnlab.models.mozafari2019", "Mozafari2019Config"),
    "kulkarni2018": Entry("snnlab.models.kulkarni2018", "Kulkarni2018Config", checkpoints="own"),
}


def _entry(name: str) -> Entry:
    if name not in MODELS:
        raise ValueError(f"model: unknown model {name!r}; choose one of {', '.join(sorted(MODELS))}")
    return MODELS[name]


def get(name: str):
    """The module of model ``name``; ``ValueError`` naming the known models otherwise.

    Example:
        >>> get("mozafari2019").__name__
        'snnlab.models.mozafari2019'
    """
    return importlib.import_module(_entry(name).module)


def config_class(name: str) -> type:
    """The config class of model ``name``.

    Example:
        >>> config_class("kheradpisheh2018").__name__
        'Kheradpisheh2018Config'
    """
    return getattr(get(name), _entry(name).config)


def keeps_own_checkpoints(name: str) -> bool:
    """Whether model ``name`` writes its own checkpoints (and checks them with ``check_resume``).

    Example:
        >>> keeps_own_checkpoints("mozafari2019")
        False
    """
    return _entry(name).checkpoints == "own"
