"""Griffe extension of the API reference (mkdocs.yml, mkdocstrings ``extensions:``).

snnlab's docstrings title their doctests ``Example:``; griffe's Google parser knows only
``Examples:`` as a code section and renders ``Example:`` as prose (the ``>>>`` lines become
nested quotes). The title is renamed when the docstring is loaded, so the doctests render as
code; the source files are untouched.
"""
from __future__ import annotations

import re

import griffe

EXAMPLE_TITLE = re.compile(r"^(\s*)Example:[ \t]*$", re.M)


class ExampleSections(griffe.Extension):
    """Rename the ``Example:`` section of every loaded docstring to ``Examples:``."""

    def on_instance(self, *, obj, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = EXAMPLE_TITLE.sub(r"\1Examples:", obj.docstring.value)
