"""kayse_async: the async-first Python SDK for the Kayse Public API.

``AsyncKayse`` is the async client; ``Kayse`` is its blocking twin. The
``models`` and ``errors`` modules are public.
"""

from . import errors, models
from ._client import AsyncKayse
from ._defaults import VERSION as __version__
from ._sync import Kayse
from ._transport import RetryEvent

__all__ = ["AsyncKayse", "Kayse", "RetryEvent", "__version__", "errors", "models"]
