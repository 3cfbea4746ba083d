"""Fork while a portal holds an object that nothing else holds (no thread's frame either); the child exits.

The object says on stdout when it is finalized, and in which process. Only the parent may
print: the child must keep the parent's objects, untouched, until its very end.
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from typing import Any

from kayse_async._sync.portal import Portal

warnings.filterwarnings("ignore", message=".*fork.*", category=DeprecationWarning)
parent = os.getpid()


class Parents:
    """Stands for the parent's loop, session and sockets."""

    def __del__(self) -> None:
        os.write(1, f"finalized in the {'parent' if os.getpid() == parent else 'child'}\n".encode())


portal: Portal[Any] = Portal(contextlib.nullcontext)  # type: ignore[arg-type]
portal._core.running = Parents()  # type: ignore[assignment]
pid = os.fork()
if pid == 0:
    assert portal.thread is None
    sys.exit(0)
_, status = os.waitpid(pid, 0)
assert os.waitstatus_to_exitcode(status) == 0, status
portal._core.running = None
