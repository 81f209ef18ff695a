"""The openai provider: any service that speaks the OpenAI embeddings API, through httpx.

`POST {EMBEDDING_URL}/embeddings` with `{"model", "input": [texts], "encoding_format": "float"}`
(plus `dimensions` when EMBEDDING_DIMENSIONS is set); the vectors are `data[i].embedding`,
put in order by `data[i].index`. OpenAI, Ollama, vLLM, LM Studio, llama.cpp's server,
Infinity, Text Embeddings Inference and LiteLLM all answer it.

httpx, not the `openai` package: httpx is here already (qdrant-client's transport), while
`openai` 3.x adds 17 MB (itself, jiter, sniffio) for one POST, with retries and errors of its
own that would still need translating into this server's deadlines and messages.

Failures become errors that name the service and what to check:
- a dropped connection, 429, 5xx: retried (EMBEDDING_RETRIES) after the answer's Retry-After
  or a growing pause, while the request's time (EMBEDDING_TIMEOUT) lasts; then
  EmbeddingUnavailable;
- unreachable (nothing listens, unknown host): EmbeddingUnavailable at once, so calls fail
  fast while the service is down (the scheduler's background probe notices its return);
- no answer in time: EmbeddingUnavailable at once (more requests do not help a slow service);
- 401, 403, 404: EmbeddingUnavailable at once (the key, the URL or the model name is wrong);
- other 4xx: EmbeddingRejected (this input; the service is fine).
The key is only ever in the Authorization header: no message, log line or span carries it.
Error bodies are quoted shortened, never for 401/403, and with the key masked were it echoed.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import anyio
import httpx

from ..errors import EmbeddingRejected, EmbeddingUnavailable
from . import Kind

log = logging.getLogger(__name__)

# Answers worth another attempt: rate limited, or the service failing for now.
RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
# The pause before retry n (when the answer names none): 0.5 s, 1 s, 2 s, ...
BACKOFF_BASE_S = 0.5
# The start's probe (and the background ones) gets at most this long: a service that hangs
# must not hold the server's start.
PROBE_TIMEOUT_S = 5.0
PROBE_TEXT = "dimension probe"
DETAIL_CHARS = 300


@dataclass(frozen=True)
class ServiceConfig:
    url: str  # the API's base URL, e.g. https://api.openai.com/v1
    model: str
    api_key: str | None = None
    dimensions: int | None = None
    timeout: float = 30.0
    retries: int = 3


class OpenAIEmbeddings:
    """An `EmbeddingModel` served over the OpenAI embeddings API."""

    def __init__(self, config: ServiceConfig) -> None:
        self.config = config
        self.endpoint = f"{config.url}/embeddings"
        self.shown_url = _without_userinfo(config.url)
        self._client: httpx.AsyncClient | None = None
        self._dimension = config.dimensions

    @property
    def name(self) -> str:
        return self.config.model

    @property
    def description(self) -> str:
        return f"OpenAI-compatible service at {self.shown_url}"

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        headers = {"Authorization": f"Bearer {self.config.api_key}"} if self.config.api_key else {}
        # The request's whole deadline (retries included) is enforced around each attempt; httpx's
        # own timeout (per connect, read, write) is a backstop. No proxy settings from the environment.
        async with httpx.AsyncClient(headers=headers, timeout=self.config.timeout, trust_env=False) as client:
            self._client = client
            try:
                yield
            finally:
                self._client = None

    async def load(self) -> int:
        """One request, no retries, at most PROBE_TIMEOUT_S: the vector size, checked against
        EMBEDDING_DIMENSIONS and against what the service returned before."""
        vectors = await self._post([PROBE_TEXT], budget_s=min(self.config.timeout, PROBE_TIMEOUT_S), retries=0)
        size = len(vectors[0])
        if self._dimension is not None and size != self._dimension:
            why = (
                f"but EMBEDDING_DIMENSIONS={self.config.dimensions}: the model does not shorten its vectors; unset "
                "EMBEDDING_DIMENSIONS or use a model that can"
                if self.config.dimensions is not None
                else f"but returned size {self._dimension} before: its model changed; restart this server"
            )
            raise EmbeddingUnavailable(f"{self._who} returns vectors of size {size} for model {self.name!r}, {why}")
        self._dimension = size
        log.info("embedding service ready", extra={"url": self.shown_url, "model": self.name, "dimension": size})
        return size

    async def embed(self, kind: Kind, texts: Sequence[str]) -> list[list[float]]:
        # The API has no query/document distinction: both kinds embed the same way.
        return await self._post(texts, budget_s=self.config.timeout, retries=self.config.retries)

    @property
    def _who(self) -> str:
        return f"embedding service at {self.shown_url}"

    async def _post(self, texts: Sequence[str], *, budget_s: float, retries: int) -> list[list[float]]:
        body: dict[str, Any] = {"model": self.config.model, "input": list(texts), "encoding_format": "float"}
        if self.config.dimensions is not None:
            body["dimensions"] = self.config.dimensions
        deadline = anyio.current_time() + budget_s
        for attempt in range(retries + 1):
            try:
                with anyio.fail_after(max(0.0, deadline - anyio.current_time())):
                    response = await self._http().post(self.endpoint, json=body)
            except TimeoutError:
                raise EmbeddingUnavailable(
                    f"{self._who} timed out (no answer within {budget_s:g} s): it may be overloaded or still loading "
                    "its model; retry, or raise EMBEDDING_TIMEOUT"
                ) from None
            except httpx.ConnectError as exc:
                raise EmbeddingUnavailable(
                    f"{self._who} is unreachable ({_cause(exc)}): check EMBEDDING_URL and that the service is "
                    "running; retry later"
                ) from None
            except httpx.TransportError as exc:
                failure, wait = f"failed on the wire ({_cause(exc)})", None
            else:
                if response.is_success:
                    return self._vectors(response, len(texts))
                if response.status_code not in RETRY_STATUS:
                    raise self._refusal(response)
                failure, wait = f"answered {_status(response)}", _retry_after(response)
            pause = wait if wait is not None else BACKOFF_BASE_S * 2**attempt
            if attempt == retries or anyio.current_time() + pause >= deadline:
                raise EmbeddingUnavailable(self._unavailable(failure, attempt + 1, wait))
            log.info(
                "embedding request retried",
                extra={"url": self.shown_url, "failure": failure, "attempt": attempt + 1, "pause_s": pause},
            )
            await anyio.sleep(pause)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            raise EmbeddingUnavailable(f"the client for the {self._who} is closed: the server is stopping")
        return self._client

    def _unavailable(self, failure: str, attempts: int, wait: float | None) -> str:
        tried = f" ({attempts} attempts)" if attempts > 1 else ""
        asks = f"; it asks to wait {math.ceil(wait)} s" if wait is not None else ""
        return f"{self._who} {failure}{tried}{asks}: retry later"

    def _refusal(self, response: httpx.Response) -> EmbeddingUnavailable | EmbeddingRejected:
        status = response.status_code
        if status in (401, 403):
            return EmbeddingUnavailable(f"{self._who} answered {_status(response)}: check EMBEDDING_API_KEY(_FILE)")
        detail = self._detail(response)
        if status == 404:
            return EmbeddingUnavailable(
                f"{self._who} answered {_status(response)} to POST {_without_userinfo(self.endpoint)} ({detail}): "
                f"check EMBEDDING_URL (the API's base, often ending in /v1) and EMBEDDING_MODEL ({self.name!r})"
            )
        return EmbeddingRejected(f"{self._who} refused the texts: {_status(response)} ({detail})")

    def _detail(self, response: httpx.Response) -> str:
        """What the service said, shortened, with the key masked should it be echoed."""
        try:
            body = response.json()
        except ValueError:
            text = response.text
        else:
            error = body.get("error", body.get("detail", body)) if isinstance(body, dict) else body
            if isinstance(error, dict):
                error = error.get("message", error)
            text = error if isinstance(error, str) else json.dumps(error, ensure_ascii=False)
        text = " ".join(text.split())[:DETAIL_CHARS] or "no detail"
        if self.config.api_key:
            text = text.replace(self.config.api_key, "***")
        return text

    def _vectors(self, response: httpx.Response, count: int) -> list[list[float]]:
        try:
            items = sorted(response.json()["data"], key=lambda item: int(item["index"]))
            vectors = [[float(x) for x in item["embedding"]] for item in items]
        except (ValueError, KeyError, TypeError) as exc:
            raise EmbeddingUnavailable(
                f"{self._who} answered with something other than an embeddings list ({type(exc).__name__}): "
                "check EMBEDDING_URL (the API's base, often ending in /v1)"
            ) from None
        sizes = {len(vector) for vector in vectors}
        if len(vectors) != count or len(sizes) != 1 or 0 in sizes:
            raise EmbeddingUnavailable(
                f"{self._who} returned {len(vectors)} vectors of sizes {sorted(sizes)} for {count} texts"
            )
        size = sizes.pop()
        if self._dimension is not None and size != self._dimension:
            raise EmbeddingUnavailable(
                f"{self._who} now returns vectors of size {size} instead of {self._dimension}: its model changed; "
                "restart this server"
            )
        return vectors


def _status(response: httpx.Response) -> str:
    return f"{response.status_code} {response.reason_phrase}".strip()


def _retry_after(response: httpx.Response) -> float | None:
    """The pause the answer asks for: `retry-after-ms` (OpenAI's), or `Retry-After` in seconds or as a date."""
    milliseconds = response.headers.get("retry-after-ms")
    value = response.headers.get("retry-after")
    try:
        if milliseconds is not None:
            return max(0.0, float(milliseconds) / 1000)
        if value is not None:
            return max(0.0, float(value))
    except ValueError:
        pass
    if value is None:
        return None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _cause(exc: httpx.TransportError) -> str:
    """What went wrong on the wire, in words: the OS's reason lies at the end of the exception chain."""
    if isinstance(exc, httpx.ConnectError):
        root: BaseException = exc
        while (inner := root.__cause__ or root.__context__) is not None:
            root = inner
        if isinstance(root, ConnectionRefusedError):
            return "connection refused"
        return f"cannot connect: {getattr(root, 'strerror', None) or root}"
    if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError | httpx.WriteError):
        return "connection dropped"
    return type(exc).__name__


def _without_userinfo(url: str) -> str:
    parsed = httpx.URL(url)
    return str(parsed.copy_with(username=None, password=None)) if parsed.userinfo else url
