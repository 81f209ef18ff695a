"""Event streams clients hold open (2025-11-25 GET streams) neither lock new clients out nor protect idle sessions.

Every client here is a raw httpx client with a loopback source address of its own
(127.0.0.2, 127.0.0.3, ...: all of 127/8 reaches the server's 127.0.0.1), so the server sees
distinct clients as it would on a network, each opening a session and a GET event stream the
way the SDK's client does after its handshake.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass

import httpx
from reliability_support import LegacyEra, ModernEra

from bench.workload import sized_documents
from support import ServerProcess

Start = Callable[..., ServerProcess]
# Time for the server to see a stream end or a client leave.
SETTLE_S = 10.0


@dataclass
class Client:
    """One client: its own source address, its session, and the GET stream it may hold."""

    era: LegacyEra
    http: httpx.Client
    stream: httpx.Response | None = None

    def ping(self) -> int:
        return self.era.post("ping", None).status

    def open_stream(self, stack: ExitStack) -> httpx.Response:
        """GET the session's event stream and hold it (the response is read only to see it end)."""
        headers = {**self.era.headers("GET"), "Accept": "text/event-stream"}
        del headers["Content-Type"]
        self.stream = stack.enter_context(
            self.http.stream("GET", self.era.url, headers=headers, timeout=httpx.Timeout(5, read=SETTLE_S))
        )
        return self.stream


def streaming_clients(server: ServerProcess, count: int, stack: ExitStack, first_address: int = 2) -> list[Client]:
    """`count` clients, from 127.0.0.<first_address> on, one after the other: each opens a session and
    holds its event stream (as the SDK's client does after its handshake); closed with `stack`."""
    opened = []
    for index in range(count):
        address = f"127.0.0.{first_address + index}"
        http = stack.enter_context(httpx.Client(transport=httpx.HTTPTransport(local_address=address), timeout=30))
        client = Client(LegacyEra(server.mcp_url, http), http)
        assert client.open_stream(stack).status_code == 200
        opened.append(client)
    return opened


def newcomer(server: ServerProcess, stack: ExitStack) -> LegacyEra:
    """A client that opens a session (asserting 200) and holds no stream."""
    return LegacyEra(server.mcp_url, stack.enter_context(httpx.Client(timeout=30)))


def open_listen_stream(server: ServerProcess, http: httpx.Client, stack: ExitStack) -> httpx.Response:
    """A 2026-07-28 `subscriptions/listen` POST: the stateless era's held stream (no session)."""
    era = ModernEra(server.mcp_url, http)
    params = era.params_text('{"notifications": {"toolsListChanged": true}}')
    body = f'{{"jsonrpc":"2.0","id":1,"method":"subscriptions/listen","params":{params}}}'
    headers = era.headers("subscriptions/listen")
    return stack.enter_context(http.stream("POST", server.mcp_url, content=body, headers=headers))


def ended(stream: httpx.Response) -> bool:
    """True when the server ended the stream (it is read to its end), False while it stays open."""
    try:
        stream.read()
    except httpx.ReadTimeout:
        return False
    return True


def test_held_streams_at_the_cap_leave_room_for_new_clients(start_server: Start) -> None:
    """30 clients hold event streams against a cap of 20: the 10 least recently active are ended (their
    streams end, their sessions answer 404 as the protocol tells clients to start again), and one more
    client still gets a session. Before, a held stream counted as a call in flight: the 21st got 503."""
    server = start_server({"MCP_MAX_SESSIONS": "20"})
    with ExitStack() as stack:
        held = streaming_clients(server, 30, stack)
        assert newcomer(server, stack).post("ping", None).status == 200
        assert server.ready_details()["sessions_open"] == 20
        evicted, kept = held[:11], held[11:]
        assert all(client.stream is not None and ended(client.stream) for client in evicted)
        assert [client.ping() for client in evicted] == [404] * len(evicted)
        assert [client.ping() for client in kept] == [200] * len(kept)
    assert "Traceback" not in server.log()


def test_a_call_in_flight_protects_its_session_from_eviction(start_server: Start) -> None:
    """The busy session is the least recently active one (its call started first), yet the newcomers
    end every other session before it, and its call is answered."""
    server = start_server({"MCP_MAX_SESSIONS": "4"})
    # Seconds of embedding (4-5 s on a busy 2-core machine), while the newcomers take well under 0.1 s.
    entries = sized_documents(15, "in-flight", 24, 1000)
    with ExitStack() as stack, ThreadPoolExecutor(1) as pool:
        held = streaming_clients(server, 4, stack)
        busy, others = held[0], held[1:]
        call = pool.submit(busy.era.call, "qdrant-store-many", {"entries": entries, "collection_name": "busy"})
        deadline = time.monotonic() + SETTLE_S
        while server.ready_details()["calls_in_flight"] == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert [client.ping() for client in others] == [200] * 3  # now more recently active than the busy one
        newcomers = [newcomer(server, stack) for _ in range(4)]
        still_in_flight = server.ready_details()["calls_in_flight"]
        reply = call.result()
        assert reply.status == 200 and reply.structured is not None, reply.describe()
        assert len(reply.structured["ids"]) == len(entries)
        assert still_in_flight == 1, "the call ended before the last newcomer came: the test needs a longer one"
        assert busy.ping() == 200
        assert [client.ping() for client in others] == [404] * 3
        assert [era.post("ping", None).status for era in newcomers] == [404, 200, 200, 200]


def test_held_streams_do_not_keep_an_idle_session(start_server: Start) -> None:
    """A client holding its stream but making no call for MCP_SESSION_IDLE_TIMEOUT is ended like any idle one."""
    server = start_server({"MCP_SESSION_IDLE_TIMEOUT": "1"})
    with ExitStack() as stack:
        [client] = streaming_clients(server, 1, stack)
        assert client.stream is not None and ended(client.stream)
        assert client.ping() == 404
        assert server.ready_details()["sessions_open"] == 0


def test_one_client_holds_a_bounded_number_of_streams(start_server: Start) -> None:
    """Streams of either era beyond MCP_MAX_STREAMS_PER_CLIENT from one address get 429 saying why; other
    addresses are unaffected, calls go on, and a stream closed by its client frees its place."""
    server = start_server({"MCP_MAX_STREAMS_PER_CLIENT": "3"})
    with ExitStack() as stack:
        http = stack.enter_context(httpx.Client(timeout=30))
        same_address = [Client(LegacyEra(server.mcp_url, http), http) for _ in range(3)]
        for client in same_address[:2]:
            assert client.open_stream(stack).status_code == 200
        assert open_listen_stream(server, http, stack).status_code == 200
        for refused in (same_address[2].open_stream(stack), open_listen_stream(server, http, stack)):
            assert refused.status_code == 429
            refused.read()
            assert "127.0.0.1 already holds 3 open event streams" in refused.json()["detail"]
            assert "MCP_MAX_STREAMS_PER_CLIENT" in refused.json()["detail"]
        assert same_address[2].ping() == 200  # the session itself works without a stream
        streaming_clients(server, 1, stack)  # another address holds its stream meanwhile
        first = same_address[0].stream
        assert first is not None
        first.close()
        deadline = time.monotonic() + SETTLE_S
        while (status := same_address[2].open_stream(stack).status_code) == 429 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert status == 200
    assert "Traceback" not in server.log()
