"""Where the project's example skills and sample datasets are: found from a folder the user
names, ``$DINGSKILL_PROJECT``, or the current directory and its parents — never from where the
package is installed (an installed wheel has no ``skills/`` or ``datasets/`` beside it)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["ProjectNotFound", "find_project"]


class ProjectNotFound(FileNotFoundError):
    """No folder holding ``skills/`` and ``datasets/`` was found."""


def _is_project(p: Path) -> bool:
    return (p / "skills").is_dir() and (p / "datasets").is_dir()


def find_project(explicit=None, environ: dict | None = None, start: Path | None = None) -> Path:
    """The project folder (holding ``skills/`` and ``datasets/``): ``explicit`` if given,
    else ``$DINGSKILL_PROJECT``, else the first of ``start`` (default: the current directory)
    and its parents that holds both."""
    env = os.environ if environ is None else environ
    given = explicit or env.get("DINGSKILL_PROJECT")
    if given:
        p = Path(given).expanduser().resolve()
        if not _is_project(p):
            raise ProjectNotFound(f"{p}: no skills/ and datasets/ folders here")
        return p
    here = (start or Path.cwd()).resolve()
    for p in (here, *here.parents):
        if _is_project(p):
            return p
    raise ProjectNotFound(
        f"no dingskill project (a folder with skills/ and datasets/) in {here} or its parents; "
        "run from the project, set DINGSKILL_PROJECT or pass its folder"
    )
