#!/usr/bin/python3
"""Stand-ins for the observability images the stack pins, for machines that can pull no image.

TEST INFRASTRUCTURE ONLY (tests/stack/README.md says what each mimics and where that was read).
One program, installed in each stand-in image at the path of the binary it replaces and chosen
by that name, like busybox: /otelcol-contrib, /bin/prometheus, /bin/promtool, /tempo,
/usr/bin/loki, /run.sh (Grafana's entrypoint) and /usr/bin/wget (busybox's, for Grafana's
health check). Standard library only: the images carry the base's python3 and nothing else.

What each one does is what the stack relies on, as the real one does it at the pinned version:
read its configuration from the bind mount (and exit 1 when it cannot), write where the real
one writes (the named volumes) and exit 1 when it cannot, read the secret files it is given,
answer its health check and the endpoints the other services call. It stores nothing: what
it receives is counted and logged, one line per batch, which the tests read in its logs.
"""

from __future__ import annotations

import base64
import glob
import http.client
import http.server
import json
import os
import re
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

Handler = Callable[[http.server.BaseHTTPRequestHandler, bytes], tuple[int, str]]


def say(line: str) -> None:
    print(line, flush=True)


def fail(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
    sys.exit(1)


def flag(args: list[str], name: str, default: str | None = None) -> str | None:
    """`-name=value`, `--name=value`, `--name value` (Go's flag package accepts them all)."""
    for i, arg in enumerate(args):
        bare = arg.lstrip("-")
        if bare.startswith(name + "="):
            return bare.split("=", 1)[1]
        if bare == name and i + 1 < len(args):
            return args[i + 1]
    return default


def read(path: str, what: str) -> str:
    try:
        return Path(path).read_text()
    except OSError as exc:
        fail(f"cannot read {what}: {exc}")
        raise  # unreachable


def writable(folder: str) -> None:
    """Create the folder and a file in it, as the real service does on its data volume."""
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / ".standin").write_text(str(time.time()))
    except OSError as exc:
        fail(f"cannot write to {folder}: {exc}")


def urlopen(request: urllib.request.Request | str, timeout: float = 5) -> http.client.HTTPResponse:
    """Every URL here is http:// to a service of the stack or the container itself."""
    return urllib.request.urlopen(request, timeout=timeout)  # noqa: S310  # http:// of the stack's services


def get(url: str, headers: dict[str, str] | None = None, timeout: float = 3) -> int:
    request = urllib.request.Request(url, headers=headers or {})  # noqa: S310  # see urlopen
    try:
        with urlopen(request, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def probe(url: str) -> None:
    """A `-health`-style probe: exit 0 when the URL answers 200."""
    try:
        sys.exit(0 if get(url) == 200 else 1)
    except OSError:
        sys.exit(1)


def serve(port: int, routes: dict[tuple[str, str], Handler], name: str) -> None:
    """Answer `routes` on 0.0.0.0:port in a thread; anything else is 404."""

    class Server(http.server.BaseHTTPRequestHandler):
        def handle_one(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            route = routes.get((method, self.path.split("?", 1)[0]))
            status, text = route(self, body) if route else (404, f"{name} stand-in: no {method} {self.path}")
            data = text.encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json" if text.startswith(("{", "[")) else "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self.handle_one("GET")

        def do_POST(self) -> None:
            self.handle_one("POST")

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("0.0.0.0", port), Server)  # inside its container
    threading.Thread(target=server.serve_forever, daemon=True).start()


def received(kind: str) -> Handler:
    def handler(request: http.server.BaseHTTPRequestHandler, body: bytes) -> tuple[int, str]:
        say(f"received OTLP {kind}: {len(body)} bytes")
        return 200, "{}"

    return handler


def ready(_: http.server.BaseHTTPRequestHandler, __: bytes) -> tuple[int, str]:
    return 200, "ready"


def forever() -> None:
    while True:
        time.sleep(3600)


# --- otel/opentelemetry-collector-contrib ------------------------------------------------------


def otelcol(args: list[str]) -> None:
    """Reads its config; OTLP/HTTP in on 4318, forwarded as the pipelines say (metrics to
    Prometheus, logs to Loki, traces to Tempo); scrapes Qdrant with the credentials_file, read
    again at every scrape as Prometheus' scrape code does (a failed read fails that scrape,
    the collector keeps running); health_check on 13133."""
    config = read(flag(args, "config") or "/etc/otelcol-contrib/config.yaml", "the collector config")
    exporters = {
        "metrics": "http://prometheus:9090/api/v1/otlp/v1/metrics",
        "logs": "http://loki:3100/otlp/v1/logs",
        "traces": "http://tempo:4318/v1/traces",  # the real one exports traces over gRPC (4317)
    }

    def forward(kind: str) -> Handler:
        def handler(request: http.server.BaseHTTPRequestHandler, body: bytes) -> tuple[int, str]:
            target = urllib.request.Request(  # noqa: S310  # see urlopen
                exporters[kind], data=body, method="POST", headers={"Content-Type": "application/x-protobuf"}
            )
            try:
                with urlopen(target) as response:
                    status = response.status
            except (OSError, urllib.error.HTTPError) as exc:
                status = getattr(exc, "code", 0)
            say(f"received OTLP {kind}: {len(body)} bytes, exported -> {status}")
            return 200, "{}"

        return handler

    routes: dict[tuple[str, str], Handler] = {("POST", f"/v1/{kind}"): forward(kind) for kind in exporters}
    serve(4318, routes, "otelcol-contrib")
    serve(13133, {("GET", "/"): lambda *_: (200, '{"status":"Server available"}')}, "health_check")
    jobs = []
    for block in re.split(r"-\s*job_name:", config)[1:]:
        target = re.search(r'targets:\s*\[\s*"([^"]+)"', block)
        credentials = re.search(r"credentials_file:\s*(\S+)", block)
        interval = re.search(r"scrape_interval:\s*(\d+)s", block)
        if target and credentials:
            jobs.append((target[1], credentials[1], int(interval[1]) if interval else 60))
    say(f"collector stand-in: config read, {len(jobs)} scrape job(s) with credentials")
    while True:
        for target, credentials, _ in jobs:
            try:
                token = Path(credentials).read_text().strip()
            except OSError as exc:
                say(f"scrape {target}/metrics failed: unable to read authorization credentials file: {exc}")
                continue
            try:
                status = get(f"http://{target}/metrics", {"Authorization": f"Bearer {token}"})
                say(f"scrape {target}/metrics -> {status}")
            except OSError as exc:
                say(f"scrape {target}/metrics failed: {exc}")
        time.sleep(min((interval for _, _, interval in jobs), default=60) if jobs else 3600)


# --- prom/prometheus ---------------------------------------------------------------------------


def prometheus(args: list[str]) -> None:
    """Loads its config and every rule file it names (exit 1 when one cannot be read), opens its
    storage (exit 1 when not writable); /-/ready, and the OTLP receiver when enabled."""
    config_file = flag(args, "config.file", "/etc/prometheus/prometheus.yml") or ""
    config = read(config_file, "the config file")
    folder = Path(config_file).parent
    for pattern in re.findall(r"^\s*-\s*(\S+\.ya?ml)\s*$", config.split("rule_files:", 1)[-1], re.M):
        for rules in glob.glob(str(folder / pattern)) or [str(folder / pattern)]:
            read(rules, f"rule file {rules}")
    writable(flag(args, "storage.tsdb.path", "data/") or "data/")
    routes: dict[tuple[str, str], Handler] = {("GET", "/-/ready"): ready, ("GET", "/-/healthy"): ready}
    if "--web.enable-otlp-receiver" in args:
        routes[("POST", "/api/v1/otlp/v1/metrics")] = received("metrics")
    serve(9090, routes, "prometheus")
    say("prometheus stand-in: config and rules loaded, storage writable, listening on :9090")
    forever()


def promtool(args: list[str]) -> None:
    """`promtool check ready` (default --url http://localhost:9090)."""
    if args[:2] != ["check", "ready"]:
        fail(f"promtool stand-in: only `check ready`, not {args}")
    probe("http://localhost:9090/-/ready")


# --- grafana/tempo and grafana/loki ------------------------------------------------------------


def tempo(args: list[str]) -> None:
    """`-health` probes :3200/ready; else reads -config.file and opens the storage paths it names."""
    if "-health" in args:
        probe("http://localhost:3200/ready")
    config = read(flag(args, "config.file") or "/etc/tempo.yaml", "the config file")
    for path in re.findall(r"path:\s*(/\S+)", config):
        writable(path)
    serve(3200, {("GET", "/ready"): ready}, "tempo")
    serve(4318, {("POST", "/v1/traces"): received("traces")}, "tempo OTLP")
    say("tempo stand-in: config read, storage writable, listening on :3200 and :4318")
    forever()


def loki(args: list[str]) -> None:
    """`-health` probes :3100/ready; else reads -config.file and opens the folders it names."""
    if "-health" in args:
        probe("http://localhost:3100/ready")
    config = read(flag(args, "config.file") or "/etc/loki/local-config.yaml", "the config file")
    for path in re.findall(r"(?:path_prefix|_directory|dir):\s*(/\S+)", config):
        writable(path)
    serve(3100, {("GET", "/ready"): ready, ("POST", "/otlp/v1/logs"): received("logs")}, "loki")
    say("loki stand-in: config read, storage writable, listening on :3100")
    forever()


# --- grafana/grafana ---------------------------------------------------------------------------


def grafana(args: list[str]) -> None:
    """/run.sh: GF_*__FILE become the plain variables the way run.sh does it (an unreadable file
    leaves the value empty and start-up goes on: `export X="$(cat FILE)"` under `set -e`), the
    plugins folder is created in the data volume (run.sh exits when it cannot), the provisioning
    files are read; /api/health open, /api/user behind the admin login (default admin:admin
    when no password was set)."""
    for name in [key for key in os.environ if key.startswith("GF_") and key.endswith("__FILE")]:
        target = name.removesuffix("__FILE")
        say(f"Getting secret {target} from {os.environ[name]}")
        try:
            os.environ[target] = Path(os.environ.pop(name)).read_text().rstrip("\n")
        except OSError as exc:
            print(f"cat: {exc.filename}: {exc.strerror}", file=sys.stderr, flush=True)
            os.environ[target] = ""
    data = os.environ.get("GF_PATHS_DATA", "/var/lib/grafana")
    writable(os.environ.get("GF_PATHS_PLUGINS", f"{data}/plugins"))
    writable(data)
    provisioning = Path(os.environ.get("GF_PATHS_PROVISIONING", "/etc/grafana/provisioning"))
    provisioned = [read(str(p), f"provisioning file {p}") for p in sorted(provisioning.rglob("*.yaml"))]
    user = os.environ.get("GF_SECURITY_ADMIN_USER") or "admin"
    password = os.environ.get("GF_SECURITY_ADMIN_PASSWORD") or "admin"
    expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    def whoami(request: http.server.BaseHTTPRequestHandler, _: bytes) -> tuple[int, str]:
        if request.headers.get("Authorization") != expected:
            return 401, '{"message":"Unauthorized"}'
        return 200, json.dumps({"login": user, "isGrafanaAdmin": True})

    health = json.dumps({"database": "ok", "version": "stand-in"})
    serve(3000, {("GET", "/api/health"): lambda *_: (200, health), ("GET", "/api/user"): whoami}, "grafana")
    say(f"grafana stand-in: {len(provisioned)} provisioning files read, listening on :3000")
    forever()


def wget(args: list[str]) -> None:
    """busybox `wget -qO- URL` (Grafana's health check): the body on stdout, exit 1 on failure."""
    url = next((arg for arg in args if "://" in arg), "")
    try:
        with urlopen(url) as response:
            sys.stdout.write(response.read().decode())
    except (OSError, urllib.error.HTTPError) as exc:
        fail(f"wget: {exc}")


PROGRAMS = {
    "otelcol-contrib": otelcol,
    "prometheus": prometheus,
    "promtool": promtool,
    "tempo": tempo,
    "loki": loki,
    "run.sh": grafana,
    "wget": wget,
}

if __name__ == "__main__":
    PROGRAMS[Path(sys.argv[0]).name](sys.argv[1:])
