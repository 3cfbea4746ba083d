"""Use Kayse, fork, use it in the child (which exits normally, never closing it), then again in the parent.

Prints what each side saw. The recording server tells the test which
connection served which request.
"""

from __future__ import annotations

import os
import sys
import warnings

from kayse_async import Kayse, errors

# Python 3.12+ warns about fork() in a process with threads; the point here is to do just that.
warnings.filterwarnings("ignore", message=".*fork.*", category=DeprecationWarning)

url = sys.argv[1]
kayse = Kayse("test-key", base_url=url, calls_base_url=url, timeout=20)
kayse.metadata.objects()
parent_thread = kayse.portal_thread
assert parent_thread is not None
started_before_fork = kayse.case_lists.list()
pid = os.fork()
if pid == 0:
    assert kayse.portal_thread is None, "the child must not see the parent's loop thread as its own"
    try:
        next(started_before_fork)
    except errors.KayseError as exc:
        if "fork" not in str(exc):
            raise
    else:
        raise AssertionError("a generator of the parent's loop went on in the child")
    kayse.metadata.objects()
    kayse.metadata.objects()
    child_thread = kayse.portal_thread
    assert child_thread is not None
    assert child_thread.is_alive()
    print("child ok", flush=True)
    sys.exit(0)
_, status = os.waitpid(pid, 0)
assert os.waitstatus_to_exitcode(status) == 0, status
assert kayse.portal_thread is parent_thread
kayse.metadata.objects()
print("parent ok", flush=True)
kayse.close()
