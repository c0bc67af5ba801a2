"""Loading backfill's Lua scripts (the ``*.lua`` files in ``scripts/`` beside this module)."""
from __future__ import annotations

import functools
from importlib import resources


@functools.cache
def script(name: str) -> str:
    """The source of script ``name`` with lib.lua's helpers in front (Redis scripts cannot import)."""
    folder = resources.files("worker.store").joinpath("scripts")
    return folder.joinpath("lib.lua").read_text() + "\n" + folder.joinpath(name).read_text()


def with_lib(source: str) -> str:
    """``source`` with lib.lua's helpers in front (for a script that is not one of ours: the benchmark's)."""
    return resources.files("worker.store").joinpath("scripts", "lib.lua").read_text() + "\n" + source
