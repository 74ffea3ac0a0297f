"""External programs some tests run (curl, wget, ab, lftp, nginx, wrk).

On a user's machine a missing program skips the test that needs it, with the
reason shown; in CI (``TORSION_REQUIRE_TOOLS=1``, set by ``.ci/run``, which
installs the programs first) a missing program fails the test instead, so a
skipped real-client test can never pass CI unnoticed.
"""

from __future__ import annotations

import os
import shutil

import pytest

__all__ = ["require_tool"]


def require_tool(name: str) -> str:
    """The full path of program ``name``; skip (or, in CI, fail) when it is missing.

    Example:
        >>> curl = require_tool("curl")   # doctest: +SKIP
    """
    path = shutil.which(name)
    if path is not None:
        return path
    if os.environ.get("TORSION_REQUIRE_TOOLS") == "1":
        pytest.fail(f"{name} is required (TORSION_REQUIRE_TOOLS=1) but not installed")
    pytest.skip(f"{name} not installed")
