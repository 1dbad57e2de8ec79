"""Process helpers shared by jsmp.files (stale temps) and the run callbacks (killed runs).

The sweeper plugin has its own copy of `pid_alive`: it imports nothing from jsmp."""

from __future__ import annotations

import os


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this machine (owned by anyone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, but belongs to another user
        return True
    return True
