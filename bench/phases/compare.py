"""Side by side: our server against the official mcp-server-qdrant 0.8.1, in memory, same workload.

Each server runs alone, in a fresh process per protocol era (ours twice: the 2025 legacy
handshake, the primary run compared with the official server, then the 2026-07-28 era with
the same documents). Per process: the no-op baseline (tools/list at 1 and 8 clients),
warm-up, stores and finds at 1 client then at 8, optionally a py-spy profile under 8-client
finds, one store-many (ours), then RSS and SIGTERM. Ratios are computed within one run.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from .. import procfs, profiling, servers
from .. import workload as w
from ..context import Context
from ..driver import LEGACY, run_calls, wait_ready
from ..errors import SetupError
from ..progress import log
from ..provenance import package_versions, source_fingerprint
from ..report import ratio
from ..servers import MODERN, ServerSpec
from . import compare_report, recording_failure
from .compare_report import phase_of

NAME = "compare"
SUMMARY = "ours vs official 0.8.1 in memory: stores/finds at 1 and 8 clients, store-many, ready, RSS, SIGTERM"
WARMUP = 5


@dataclass(frozen=True)
class Plan:
    n_stores: int
    m_finds: int
    many: int
    noop: int
    warmup: int
    high: int
    seed: int
    profile_finds: int


def plan_of(context: Context) -> Plan:
    options, quick = context.options, context.quick
    return Plan(
        n_stores=options.stores or (40 if quick else 1000),
        m_finds=options.finds or (40 if quick else 1000),
        many=options.many if options.many is not None else (100 if quick else 1000),
        noop=options.noop or (40 if quick else 300),
        warmup=WARMUP,
        high=options.clients,
        seed=context.seed,
        profile_finds=options.profile_finds or (200 if quick else 2000),
    )


async def run(context: Context) -> dict[str, Any]:
    plan = plan_of(context)
    options = context.options
    order = [name.strip() for name in options.order.split(",") if name.strip()]
    if options.only:
        order = [options.only]
    specs: list[ServerSpec] = []
    for name in order:
        if name == "official":
            specs.append(context.official())
        elif name == "ours":
            modern = not options.no_modern and context.client_kind == "sdk"
            modes = (LEGACY, MODERN) if modern else (LEGACY,)
            specs.append(context.ours(modes=modes))
        else:
            raise SetupError(f"unknown server {name!r} in --order")
    measured = {}
    for spec in specs:
        measured[spec.name] = await measure_server(context, spec, plan)
    official, ours = measured.get("official"), measured.get("ours")
    return {
        "plan": asdict(plan),
        "servers": measured,
        "targets": targets(official, ours, plan, context.quick),
        "errors": sum(server.get("errors", 0) for server in measured.values()),
        "fatal": "; ".join(f"{name}: {s['fatal']}" for name, s in measured.items() if s.get("fatal")) or None,
    }


async def measure_server(context: Context, spec: ServerSpec, plan: Plan) -> dict[str, Any]:
    """One server: a fresh process per protocol era, the same documents in each."""
    measured: dict[str, Any] = {"name": spec.name, "argv": spec.argv(0), "phases": [], "instances": []}
    measured["env"] = spec.shown_env()
    measured["versions"] = package_versions(spec.python)
    if spec.name == "ours":
        measured["source"] = source_fingerprint()
    used_queries: set[str] = set()

    def record(phase: dict[str, Any]) -> None:
        measured["phases"].append(phase)
        log(
            f"  {spec.name:8s} {phase['mode']:10s} {phase['phase']:18s} c={phase['clients']} n={phase['n']} "
            f"err={phase['errors']} p50={phase.get('p50_ms')}ms p99={phase.get('p99_ms')}ms "
            f"thr={phase.get('throughput')}/s cli_cpu={phase.get('client_cpu_util')} "
            f"srv_cpu={phase.get('server_cpu_util')} main={phase.get('server_main_thread_util')} "
            f"other={phase.get('other_cpu_util')}"
        )

    for index, mode in enumerate(spec.modes):
        primary = index == 0
        suffix = "" if mode == LEGACY else "_modern"
        server = servers.start(spec, context.log_path(f"{spec.name}{suffix}"))
        instance: dict[str, Any] = {"mode": mode, "log": str(server.log_path), "port": server.port}
        measured["instances"].append(instance)
        log(f"starting {spec.name} ({mode}): {server.process.args}")
        with recording_failure(server, instance):
            instance["startup"] = await wait_ready(server, context.options.ready_timeout)
            instance["startup"]["rss_ready_mb"] = round(procfs.tree_rss_kib(server.pid)[0] / 1024, 1)
            measured.setdefault("url", server.mcp_url)
            log(f"  {spec.name} ready: {instance['startup']}")
            for phase in await _phases(context, server, mode=mode, suffix=suffix, plan=plan, used_queries=used_queries):
                record(phase)
            if primary:
                tools = instance["startup"].get("tools", [])
                extra, profiled = await _primary_phases(
                    context, server, mode=mode, plan=plan, tools=tools, used=used_queries
                )
                if profiled is not None:
                    measured["profile"] = profiled
                for phase in extra:
                    record(phase)
            rss, hwm = procfs.tree_rss_kib(server.pid)
            instance.update(
                rss_mb=round(rss / 1024, 1),
                hwm_mb=round(hwm / 1024, 1),
                threads=procfs.tree_threads(server.pid),
                processes=len(procfs.process_tree(server.pid)),
                sigterm=server.stop(10.0),
            )
            log(
                f"  {spec.name} ({mode}) rss={instance['rss_mb']} MB hwm={instance['hwm_mb']} MB "
                f"threads={instance['threads']} sigterm={instance['sigterm']}"
            )
        if instance.get("fatal"):
            log(f"  {spec.name} ({mode}) FAILED: {instance['fatal']}")
        if primary:
            for key in ("startup", "rss_mb", "hwm_mb", "threads", "processes", "sigterm", "fatal"):
                if key in instance:
                    measured[key] = instance[key]
        elif instance.get("fatal"):
            measured["fatal"] = f"{mode} instance: {instance['fatal']}"
    measured["errors"] = sum(phase.get("errors", 0) for phase in measured["phases"])
    return measured


async def _primary_phases(
    context: Context, server: Any, *, mode: str, plan: Plan, tools: list[str], used: set[str]
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """The primary instance only: the profiled finds (--profile) and one store-many (ours)."""
    done, profiled = [], None
    if context.options.profile:
        queries = w.queries(plan.seed, "profile", plan.profile_finds, used)
        log(f"  profiling {server.name} under {plan.high}-client finds ({len(queries)} queries) with py-spy ...")
        profiled = await profiling.profile(
            server,
            w.find_calls(queries),
            clients=plan.high,
            out_dir=context.out_dir,
            rate=context.options.profile_rate,
            connect=context.connect,
        )
        done.append(profiled["phase"])
    if "qdrant-store-many" in tools and plan.many:
        calls = [("qdrant-store-many", {"entries": w.documents(plan.seed, "store_many", plan.many)})]
        limits = {"call_timeout": 600, "phase_timeout": 900}
        many = await run_calls(
            server, mode, "store_many", 1, calls, connect=context.connect, per_call=plan.many, **limits
        )
        done.append(many)
    return done, profiled


async def _phases(
    context: Context, server: Any, *, mode: str, suffix: str, plan: Plan, used_queries: set[str]
) -> list[dict[str, Any]]:
    """no-op baseline, warm-up, then stores and finds at 1 client and at `plan.high` clients."""
    high, seed = plan.high, plan.seed
    done = []

    async def phase(label: str, clients: int, calls: list[w.Operation]) -> None:
        done.append(await run_calls(server, mode, label + suffix, clients, calls, connect=context.connect))

    noop = w.list_calls(plan.noop)
    await phase("noop_c1", 1, noop)
    await phase(f"noop_c{high}", high, noop)
    warm = w.store_calls(w.documents(seed, "warmup", plan.warmup))
    await phase("warmup", 1, warm + w.find_calls(w.queries(seed, "warmup" + suffix, plan.warmup, used_queries)))
    # the same documents in every instance, so each era searches an identical collection
    await phase("store_c1", 1, w.store_calls(w.documents(seed, "store_c1", plan.n_stores)))
    await phase("find_c1", 1, w.find_calls(w.queries(seed, "find_c1" + suffix, plan.m_finds, used_queries)))
    await phase(f"store_c{high}", high, w.store_calls(w.documents(seed, f"store_c{high}", plan.n_stores)))
    queries = w.queries(seed, f"find_c{high}" + suffix, plan.m_finds, used_queries)
    await phase(f"find_c{high}", high, w.find_calls(queries))
    return done


def targets(
    official: dict[str, Any] | None, ours: dict[str, Any] | None, plan: Plan, quick: bool
) -> list[dict[str, Any]]:
    """The comparison's rows: official, ours, ours/official, the target and whether ours meets it."""
    high = plan.high
    rows: list[dict[str, Any]] = []

    def value(measured: dict[str, Any] | None, phase: str, key: str) -> Any:
        found = phase_of(measured, phase)
        return found.get(key) if found else None

    def both(phase: str, key: str) -> tuple[Any, Any]:
        return value(official, phase, key), value(ours, phase, key)

    def add(
        metric: str,
        o: Any,
        u: Any,
        target: str = "",
        met: bool | None = None,
        *,
        compared: Any = "ours/official",
        note: str = "",
    ) -> None:
        """`compared`: the ratio to show; by default ours / official, None for rows where it means nothing."""
        shown = ratio(u, o) if compared == "ours/official" else compared
        rows.append(
            {"metric": metric, "official": o, "ours": u, "ratio": shown, "target": target, "met": met, "note": note}
        )

    def startup(measured: dict[str, Any] | None, key: str) -> Any:
        return (measured or {}).get("startup", {}).get(key)

    # The start's targets (stdio and /healthz) are the startup phase's; this is the HTTP spawn here.
    o, u = startup(official, "ready_s"), startup(ours, "ready_s")
    add("ready: spawn → first tools/list (s)", o, u)
    add("ready: spawn → /readyz 200 (s)", None, startup(ours, "readyz_s"))
    for phase in ("noop_c1", f"noop_c{high}"):
        add(f"no-op baseline tools/list p50 @{phase.split('_c')[1]} (ms)", *both(phase, "p50_ms"))
    o, u = both("store_c1", "p50_ms")
    add("store p50 @1 (ms)", o, u)
    o, u = both("find_c1", "p50_ms")
    r = ratio(u, o)
    add("find p50 @1 (ms)", o, u, "≤ 0.5x official", None if r is None else r <= 0.5)
    for phase in ("store_c1", "find_c1"):
        add(f"{phase.split('_')[0]} throughput @1 (ops/s)", *both(phase, "throughput"))
    for phase, factor in ((f"store_c{high}", 2.5), (f"find_c{high}", 3.0)):
        o, u = both(phase, "throughput")
        r = ratio(u, o)
        kind = phase.split("_")[0]
        add(f"{kind} throughput @{high} (ops/s)", o, u, f"≥ {factor:g}x official", None if r is None else r >= factor)
    for phase in (f"store_c{high}", f"find_c{high}"):
        add(f"{phase.split('_')[0]} p50 @{high} (ms)", *both(phase, "p50_ms"))
    for phase in ("store_c1", "find_c1", f"store_c{high}", f"find_c{high}"):
        label = phase.replace("_c", " @")
        add(f"server CPU per op, {label} (ms; less noisy than wall time)", *both(phase, "server_cpu_ms_per_op"))
    o, u = both(f"find_c{high}", "server_main_thread_util")
    add(f"server main-thread (event loop) CPU share during find @{high} (cores)", o, u, compared=None)
    many = value(ours, "store_many", "throughput")
    add(
        f"store-many {plan.many} docs in 1 call (docs/s)",
        None,
        many,
        "≥ 150 docs/s",
        None if many is None else many >= 150,
        compared=ratio(many, value(official, f"store_c{high}", "throughput")),
        note=f"ratio is vs official store throughput @{high}"
        + ("; quick run, target is for 1000 docs" if quick else ""),
    )
    o_idle, u_idle = startup(official, "rss_ready_mb"), startup(ours, "rss_ready_mb")
    add("RSS right after ready, idle (MB)", o_idle, u_idle, "≤ 250 MB", None if u_idle is None else u_idle <= 250.0)
    o, u = (official or {}).get("rss_mb"), (ours or {}).get("rss_mb")
    add("RSS after run, incl. children (MB)", o, u)
    o_growth, u_growth = ratio(o, o_idle), ratio(u, u_idle)
    met = None if u_growth is None else u_growth <= 1.2
    add("RSS after run / RSS idle", o_growth, u_growth, "≤ 1.2", met, compared=None)
    o_stop, u_stop = (official or {}).get("sigterm") or {}, (ours or {}).get("sigterm")
    u_code = (u_stop or {}).get("returncode")
    met = None if not u_stop else u_code == 0
    add("exit status on SIGTERM (≤10 s)", o_stop.get("returncode"), u_code, "0", met, compared=None)
    shutdown = (u_stop or {}).get("shutdown_s")
    add("shutdown time after SIGTERM (s)", o_stop.get("shutdown_s"), shutdown, compared=None)
    o, u = (official or {}).get("errors"), (ours or {}).get("errors")
    add("errors (all phases)", o, u, "0", None if ours is None else u == 0, compared=None)
    return rows


markdown = compare_report.markdown
