"""``python -m kayse_async.testing``: run the Kayse emulator (see docs/emulator.md)."""

from __future__ import annotations

import sys

from ._cli import main

if __name__ == "__main__":
    sys.exit(main())
