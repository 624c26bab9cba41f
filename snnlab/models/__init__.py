"""Reproduction models: each module holds a network, its config (published defaults and a
``quick`` preset) and a ``reproduce(config, out_dir, device, seed, resume, progress)``
function that runs the whole protocol and writes a results folder.
"""
import importlib

#: model name -> module (imported lazily: each pulls in its own dependencies)
MODELS = {
    "kheradpisheh2018": "snnlab.models.kheradpisheh2018",
    "mozafari2019": "snnlab.models.mozafari2019",
    "kulkarni2018": "snnlab.models.kulkarni2018",
}


def get(name: str):
    """The module of model ``name``; ``ValueError`` naming the known models otherwise.

    Example:
        >>> get("mozafari2019").__name__
        'snnlab.models.mozafari2019'
    """
    if name not in MODELS:
        raise ValueError(f"model: unknown model {name!r}; choose one of {', '.join(sorted(MODELS))}")
    return importlib.import_module(MODELS[name])
