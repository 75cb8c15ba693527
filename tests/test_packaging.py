"""The wheel ships every package of the daemon: pyproject lists packages one by one (so the
research scripts in ``classifiers/experiments`` stay out), and a new sub-package that is not
listed would install a daemon that cannot import itself."""

from __future__ import annotations

import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
NOT_SHIPPED = {"classifiers.experiments"}


def test_every_package_is_listed_for_the_wheel() -> None:
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())
                 ["tool"]["setuptools"]["packages"])
    found = {
        ".".join(init.parent.relative_to(REPO).parts)
        for top in ("monitor", "classifiers")
        for init in (REPO / top).rglob("__init__.py")
        if "__pycache__" not in init.parts
    }
    assert found - NOT_SHIPPED - listed == set(), "add these to [tool.setuptools] packages"
    assert listed & NOT_SHIPPED == set()
