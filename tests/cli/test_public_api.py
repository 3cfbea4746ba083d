"""The ``kayse`` command is a user of the SDK like any other: it imports only public modules."""

from __future__ import annotations

import ast
from pathlib import Path

CLI = Path(__file__).resolve().parents[2] / "kayse_async" / "cli"


def private_imports(source: str) -> list[str]:
    """The SDK modules ``source`` imports whose dotted path has a private part (``_wire``, ``.._defaults``)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1 or (node.level == 0 and not (node.module or "").startswith("kayse_async")):
                continue  # the command's own modules (``._jobs``), and other packages
            module = ("." * node.level) + (node.module or "")
            names = [module] if node.module else [f"{module}{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names if alias.name.startswith("kayse_async")]
        else:
            continue
        found += [name for name in names if any(part.startswith("_") for part in name.strip(".").split("."))]
    return found


def test_the_scan_finds_private_imports() -> None:
    """The scan itself: each way of reaching a private module is caught; public ones and the command's own pass."""
    source = (
        "from .._wire.fields import CLIENTS\nfrom .. import _defaults\nimport kayse_async._sync\n"
        "from ..testing._cli import main\nfrom .. import Kayse, errors\nfrom ._jobs import Meter\n"
        "from ..testing import ThreadedEmulator\nfrom __future__ import annotations\nfrom kayse_async._wire import x\n"
    )
    assert private_imports(source) == [
        ".._wire.fields",
        ".._defaults",
        "kayse_async._sync",
        "..testing._cli",
        "kayse_async._wire",
    ]


def test_the_command_imports_no_private_module_of_the_sdk() -> None:
    """kayse_async/cli/*.py import only the SDK's public modules (the resources' check() and schema() included)."""
    found = {path.name: private_imports(path.read_text(encoding="utf-8")) for path in sorted(CLI.glob("*.py"))}
    assert found, "no module scanned"
    assert {name: names for name, names in found.items() if names} == {}
