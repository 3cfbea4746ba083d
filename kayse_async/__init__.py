"""kayse_async: the async-first Python SDK for the Kayse Public API.

``AsyncKayse`` is the async client; ``Kayse`` is its blocking twin. The
``models`` and ``errors`` modules are public.
"""

from importlib.metadata import PackageNotFoundError as _PackageNotFoundError
from importlib.metadata import version as _version

from . import errors, models
from ._client import AsyncKayse
from ._sync import Kayse
from ._transport import RetryEvent

try:
    __version__ = _version("kayse-async")
except _PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"

__all__ = ["AsyncKayse", "Kayse", "RetryEvent", "__version__", "errors", "models"]
