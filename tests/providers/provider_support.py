"""What the openai provider's tests share: the key Infinity demands and our server's settings for it.

(A module of its own, not conftest.py: several folders have a conftest, and `from conftest import`
finds whichever pytest loaded last when more than one folder is collected.)
"""

from __future__ import annotations

from collections.abc import Callable

from bench.embedding_server import MODEL
from support import ServerProcess

# The key Infinity demands (its --api-key): a wrong one gets its own 401.
API_KEY = "infinity-test-key-5f0c2a9e71d84b36"
Start = Callable[..., ServerProcess]


def provider_env(url: str, api_key: str | None = API_KEY, **settings: str) -> dict[str, str | None]:
    """Our server's settings for the openai provider at `url` (the default model's name)."""
    return {
        "EMBEDDING_PROVIDER": "openai",
        "EMBEDDING_URL": url,
        "EMBEDDING_MODEL": MODEL,
        "EMBEDDING_API_KEY": api_key,
        **settings,
    }
