"""The built server image, run the way a user runs it: `docker run` with a read-only root
filesystem and a tmpfs /tmp; the model is baked in, nothing is mounted.

Run as root, the suite's own user: these start no Compose stack and mount no file of a user, so
the engine runs the containers the same for root and for a member of the docker group.
The stack as a user runs it: test_compose_up.py and test_scripts_up.py."""

from __future__ import annotations

import gzip
import http.client
import io
import json
import subprocess
import tarfile
import time
import tomllib
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from stack_support import PLANTED_BUILD_SECRET, RESULTS_DIR, RUN_ID, call_tool, inspector, record, run

from support import REPO, free_port

pytestmark = [pytest.mark.stack, pytest.mark.timeout(1200)]

HEALTHY_WITHIN_S = 90
GRACE_S = 15
UID = "10001"


class Container:
    def __init__(self, name: str, port: int, token: str) -> None:
        self.name, self.port, self.token = name, port, token
        self.url = f"http://127.0.0.1:{port}/mcp"

    def inspect(self, fmt: str) -> str:
        return run(["docker", "inspect", "-f", fmt, self.name]).stdout.strip()

    def request(self, method: str, path: str, *, headers: dict[str, str] | None = None, body: object = None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        data = json.dumps(body).encode() if body is not None else None
        hdrs = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream", **(headers or {})}
        # http.client sends its own Host header unless told not to.
        conn.putrequest(method, path, skip_host="Host" in hdrs, skip_accept_encoding=True)
        for k, v in hdrs.items():
            conn.putheader(k, v)
        if data is not None:
            conn.putheader("Content-Length", str(len(data)))
        conn.endheaders(data)
        resp = conn.getresponse()
        payload = resp.read()
        conn.close()
        return resp.status, payload


INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "stack-test", "version": "0"},
    },
}


@pytest.fixture(scope="module")
def container(server_image: str, auth_token: str) -> Iterator[Container]:
    name = f"stack-mcp-{RUN_ID}"
    port = free_port()
    run(["docker", "rm", "-f", "-v", name], check=False)
    start = time.monotonic()
    run(
        [
            "docker",
            "run",
            "-d",
            "--name",
            name,
            "--read-only",
            "--tmpfs",
            "/tmp:size=64m",
            "--cap-drop",
            "ALL",
            "--security-opt",
            "no-new-privileges:true",
            "--memory",
            "1g",
            "-p",
            f"127.0.0.1:{port}:8000",
            "-e",
            f"MCP_AUTH_TOKEN={auth_token}",
            "-e",
            "COLLECTION_NAME=image-test",
            "-e",
            "OTEL_SDK_DISABLED=true",
            server_image,
        ]
    )
    c = Container(name, port, auth_token)
    status = ""
    while time.monotonic() - start < HEALTHY_WITHIN_S:
        status = c.inspect("{{.State.Health.Status}} {{.State.Status}}")
        if status.startswith("healthy") or "exited" in status:
            break
        time.sleep(0.5)
    c.healthy_after = round(time.monotonic() - start, 1)
    c.status = status
    yield c
    logs = run(["docker", "logs", name], check=False)
    if logs.returncode == 0:
        print(f"--- {name} logs (tail) ---\n{(logs.stdout + logs.stderr)[-3000:]}")
    run(["docker", "rm", "-f", "-v", name], check=False)


def test_becomes_healthy(container: Container) -> None:
    record("docker_run_to_healthy_s", container.healthy_after)
    assert container.status.startswith("healthy"), (
        f"not healthy within {HEALTHY_WITHIN_S}s: {container.status}\n"
        + run(["docker", "logs", container.name], check=False).stderr[-2000:]
    )
    status, body = container.request("GET", "/readyz")
    assert status == 200, body
    assert json.loads(body)["status"] == "ready"


def test_runs_as_fixed_non_root_user(container: Container, server_image: str) -> None:
    assert run(["docker", "image", "inspect", "-f", "{{.Config.User}}", server_image]).stdout.strip() in (
        UID,
        f"{UID}:{UID}",
    )
    ids = run(
        ["docker", "exec", container.name, "python", "-c", "import os; print(os.getuid(), os.getgid())"]
    ).stdout.split()
    assert ids == [UID, UID]


def test_read_only_root_filesystem(container: Container) -> None:
    assert container.inspect("{{.HostConfig.ReadonlyRootfs}}") == "true"
    probe = (
        "import sys\ntry:\n open('/opt/venv/x','w')\nexcept OSError as e:\n print(e.errno)\n sys.exit(0)\nsys.exit(1)"
    )
    out = run(["docker", "exec", container.name, "python", "-c", probe]).stdout.strip()
    assert out in ("30", "13"), out  # EROFS (or EACCES: not writable either way)
    # ...and the writable paths it does need work: embedded Qdrant under /data, /tmp.
    run(
        [
            "docker",
            "exec",
            container.name,
            "python",
            "-c",
            "import pathlib; assert any(pathlib.Path('/data').rglob('*')); open('/tmp/x','w').write('ok')",
        ]
    )


def test_image_metadata(server_image: str) -> None:
    cfg = json.loads(run(["docker", "image", "inspect", "-f", "{{json .Config}}", server_image]).stdout)
    labels = cfg.get("Labels") or {}
    # One source of truth: the version in server/pyproject.toml, the revision from git.
    version = tomllib.loads((REPO / "server" / "pyproject.toml").read_text())["project"]["version"]
    assert labels["org.opencontainers.image.version"] == version
    assert labels["org.opencontainers.image.revision"].startswith(run(["git", "rev-parse", "HEAD"]).stdout.strip())
    created = datetime.fromisoformat(labels["org.opencontainers.image.created"].replace("Z", "+00:00"))
    assert abs((datetime.now(UTC) - created).total_seconds()) < 3 * 3600
    assert labels["org.opencontainers.image.source"].startswith("https://")
    assert "example.invalid" not in json.dumps(labels) and "unknown" not in json.dumps(labels)
    reported = run(["docker", "run", "--rm", "--network", "none", server_image, "--version"]).stdout.strip()
    assert reported == f"qdrant-mcp-memory {version}"
    env = dict(item.split("=", 1) for item in cfg["Env"])
    assert env["HF_HUB_OFFLINE"] == "1" and env["FASTEMBED_CACHE_PATH"] == "/opt/models"
    assert env["MCP_TRANSPORT"] == "streamable-http" and env["MCP_HOST"] == "0.0.0.0"
    assert env["ORT_DISABLE_TELEMETRY"] == "1", "onnxruntime telemetry must be off"
    assert "QDRANT_LOCAL_PATH" not in env and env["XDG_DATA_HOME"] == "/data"
    assert cfg["Healthcheck"]["Test"][0] == "CMD" and "readyz" in " ".join(cfg["Healthcheck"]["Test"])
    assert "8000/tcp" in cfg["ExposedPorts"]
    assert cfg["Entrypoint"] and cfg["Entrypoint"][0] in ("qdrant-mcp-memory", "/opt/venv/bin/qdrant-mcp-memory")


def test_the_build_secret_never_reaches_the_image(server_image: str) -> None:
    """The CA bundle is a BuildKit secret: not in a layer, the history, the labels or the environment."""
    history = run(["docker", "history", "--no-trunc", "--format", "{{.CreatedBy}}", server_image]).stdout
    inspect = run(["docker", "image", "inspect", server_image]).stdout
    assert PLANTED_BUILD_SECRET not in history and PLANTED_BUILD_SECRET not in inspect
    saved = subprocess.run(["docker", "save", server_image], capture_output=True, timeout=300, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(saved)) as image:
        for member in image.getmembers():
            data = image.extractfile(member)
            if data is None:
                continue
            content = data.read()
            if content[:2] == b"\x1f\x8b":  # a gzipped layer
                content = gzip.decompress(content)
            assert PLANTED_BUILD_SECRET.encode() not in content, member.name


def test_refuses_to_serve_the_network_without_a_token(server_image: str) -> None:
    """`docker run -p 8000:8000 IMAGE` must not expose read, write and delete to anyone who reaches the port."""
    refused = run(["docker", "run", "--rm", "--network", "none", server_image], check=False, timeout=60)
    assert refused.returncode == 2
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and "MCP_AUTH_TOKEN" in lines[0] and "MCP_ALLOW_UNAUTHENTICATED=true" in lines[0]


@pytest.mark.anyio
async def test_stdio_for_desktop_clients(server_image: str) -> None:
    """`docker run -i --rm IMAGE --transport stdio`: initialize and tools/list on stdin/stdout, logs on stderr.
    The image is self-contained: no mount, no network, and it answers a find."""
    import anyio
    from mcp.client import Client
    from mcp.client.stdio import StdioServerParameters, stdio_client

    name = f"stack-stdio-{RUN_ID}"
    stderr = RESULTS_DIR / f"{name}.stderr"
    params = StdioServerParameters(
        command="docker",
        args=["run", "-i", "--rm", "--name", name, "--network", "none", "--read-only", "--tmpfs", "/tmp",
              "-e", "QDRANT_URL=:memory:", server_image, "--transport", "stdio"],
    )  # fmt: skip
    with stderr.open("w") as errlog:
        with anyio.fail_after(120):
            async with Client(stdio_client(params, errlog=errlog), mode="legacy") as client:
                tools = {tool.name for tool in (await client.list_tools()).tools}
                stored = await client.call_tool(
                    "qdrant-store", {"information": "stdio in a container", "collection_name": "s"}
                )
                found = await client.call_tool(
                    "qdrant-find", {"query": "a server over standard input and output", "collection_name": "s"}
                )
    assert "qdrant-find" in tools and not stored.is_error and not found.is_error
    assert [hit["document"] for hit in found.structured_content["hits"]] == ["stdio in a container"]
    logs = stderr.read_text()
    assert '"serving on stdio"' in logs or "serving on stdio" in logs  # the logs went to stderr


def test_no_build_tools_or_caches(server_image: str) -> None:
    script = (
        "import shutil, os, sys\n"
        "bad = [t for t in ('gcc', 'cc', 'make', 'pip', 'uv', 'curl', 'wget') if shutil.which(t)]\n"
        "gone = ('/root/.cache', '/root/.cache/pip', '/tmp/requirements.lock', '/src')\n"
        "bad += [p for p in gone if os.path.exists(p)]\n"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    run(["docker", "run", "--rm", "--network", "none", "--entrypoint", "python", server_image, "-c", script])


def test_inspector_lists_and_calls_tools(container: Container, inspector_cli: list[str]) -> None:
    code, body = inspector(inspector_cli, container.url, "--method", "tools/list", token=container.token)
    assert code == 0, body
    names = {t["name"] for t in body["result"]["tools"]} if "result" in body else {t["name"] for t in body["tools"]}
    assert {"qdrant-store", "qdrant-find"} <= names, names

    code, body = call_tool(
        inspector_cli, container.url, "qdrant-store", "information=the stack suite was here", token=container.token
    )
    assert code == 0, body
    code, body = call_tool(inspector_cli, container.url, "qdrant-find", "query=who was here?", token=container.token)
    assert code == 0, body
    assert "stack suite" in json.dumps(body), body


def test_auth_required(container: Container) -> None:
    status, _ = container.request("POST", "/mcp", body=INIT)
    assert status == 401
    status, _ = container.request(
        "POST", "/mcp", body=INIT, headers={"Authorization": "Bearer wrong-token-wrong-token"}
    )
    assert status == 401
    # Health needs no auth.
    assert container.request("GET", "/healthz")[0] == 200


def test_host_and_origin_checks(container: Container) -> None:
    auth = {"Authorization": f"Bearer {container.token}"}
    status, body = container.request("POST", "/mcp", body=INIT, headers={**auth, "Host": "evil.example:8000"})
    assert status == 421, (status, body)
    status, body = container.request("POST", "/mcp", body=INIT, headers={**auth, "Host": "mcp-server:8000"})
    assert status == 200, (status, body)
    status, body = container.request("POST", "/mcp", body=INIT, headers={**auth, "Origin": "http://evil.example"})
    assert status == 403, (status, body)


def test_logs_are_json_lines_on_stdout(container: Container) -> None:
    proc = run(["docker", "logs", container.name])
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert lines, "no log lines on stdout"
    for line in lines:
        record_ = json.loads(line)
        assert {"level", "message"} <= set(record_), line


def test_sigterm_stops_cleanly(container: Container) -> None:
    start = time.monotonic()
    run(["docker", "stop", "-t", str(GRACE_S), container.name], timeout=GRACE_S + 30)
    took = round(time.monotonic() - start, 2)
    record("docker_stop_s", took)
    assert container.inspect("{{.State.ExitCode}}") == "0"
    assert took < GRACE_S, f"stop took {took}s (grace {GRACE_S}s): SIGTERM not handled?"
    assert container.inspect("{{.State.OOMKilled}}") == "false"


def test_bad_setting_exits_2(server_image: str) -> None:
    proc = subprocess.run(
        ["docker", "run", "--rm", "--network", "none", "-e", "MCP_PORT=notaport", server_image],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2, proc
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
