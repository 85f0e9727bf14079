"""cc-proxy against the zero-proxy baseline and a lean reference translator, in one run, on loopback.

    python bench/run.py [--quick] [--rounds N] [--only NAME ...] [--json PATH] [--profile DIR]

Four processes: the mock upstream (bench/mock_upstream.py), the proxy (`cc-proxy serve`), the
reference translator (bench/ref_proxy.py; both servers' CPU and peak RSS read from /proc) and
this one, the load client. For every scenario the same conversation is sent straight to the
mock as an OpenAI request (direct, "A"), through cc-proxy as Claude Code's Anthropic request
("B") and through the reference ("C"), in rounds A B C A B C so machine noise cancels; the
table shows medians over the rounds, and cc-proxy's cost as a multiple of the reference's.
Then `cc-proxy --help` and `cc-proxy run` → claude spawned are timed. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson

# isort: split
# Sibling modules: bench/ is on sys.path when run as `python bench/run.py`.
import bodies
import loadgen
import procstat
import startup

BENCH_DIR = Path(__file__).resolve().parent
MOCK_SCRIPT = BENCH_DIR / "mock_upstream.py"
REFERENCE_SCRIPT = BENCH_DIR / "ref_proxy.py"
PROFILE_WRAPPER = BENCH_DIR / "profiled_proxy.py"
DEFAULT_JSON = BENCH_DIR / "results.json"
TOKEN = "bench-session-token-0123456789abcdef"
GATEWAY_PATH = "/v1/bench-account/bench-gateway"
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
# The proxy on uvloop, without changing the project: install the policy, then the real CLI.
UVLOOP_BOOT = (
    "import asyncio, sys, uvloop; asyncio.set_event_loop_policy(uvloop.EventLoopPolicy()); "
    "from cc_nemo.cli.main import main; sys.argv[0] = 'cc-proxy'; main()"
)


@dataclass(frozen=True)
class Scenario:
    name: str
    body: str  # "120k" or "2m"
    stream: bool
    concurrency: int
    requests: int
    quick_requests: int
    max_seconds: float
    mock: dict[str, Any]
    what: str


# fmt: off
# Paced scenarios space the upstream's chunks like a model generating tokens, so the time to
# the first delta is what the proxy adds to the first token, not the time it takes to
# translate a whole answer that arrived in one read (the "burst" and "long" scenarios).
PACED_MS = 1.0
# 200 chunks a second per session, faster than any Workers AI model streams; 2 ms (500/s)
# saturates this 2-core machine's three processes with either side (see bench/README.md).
C20_PACE_MS = 5.0
SCENARIOS = (
    Scenario(
        name="120k-stream-c1",
        body="120k", stream=True, concurrency=1, requests=100, quick_requests=20,
        max_seconds=30, mock={"chunks": 40, "delay_ms": PACED_MS},
        what="Claude Code's body, 40 chunks 1 ms apart: time to first delta",
    ),
    Scenario(
        name="120k-burst-c1",
        body="120k", stream=True, concurrency=1, requests=150, quick_requests=30,
        max_seconds=30, mock={"chunks": 100},
        what="100 chunks in one burst",
    ),
    Scenario(
        name="120k-json-c1",
        body="120k", stream=False, concurrency=1, requests=150, quick_requests=30,
        max_seconds=30, mock={"chunks": 100},
        what="non-streaming fallback",
    ),
    Scenario(
        name="120k-tools-c1",
        body="120k", stream=True, concurrency=1, requests=150, quick_requests=30,
        max_seconds=30, mock={"chunks": 20, "tool_call": True, "tool_fragments": 24},
        what="text, then a Bash tool call in 24 argument fragments",
    ),
    Scenario(
        name="2m-stream-c1",
        body="2m", stream=True, concurrency=1, requests=30, quick_requests=8,
        max_seconds=40, mock={"chunks": 40, "delay_ms": PACED_MS},
        what="a 2 MB history, 40 chunks 1 ms apart",
    ),
    Scenario(
        name="2m-json-c1",
        body="2m", stream=False, concurrency=1, requests=30, quick_requests=8,
        max_seconds=40, mock={"chunks": 100},
        what="a 2 MB history, non-streaming",
    ),
    Scenario(
        name="120k-stream-c20",
        body="120k", stream=True, concurrency=20, requests=300, quick_requests=80,
        max_seconds=15, mock={"chunks": 60, "delay_ms": C20_PACE_MS},
        what="20 sessions at once, 60 chunks 5 ms apart (a fast model)",
    ),
    Scenario(
        name="120k-json-c20",
        body="120k", stream=False, concurrency=20, requests=300, quick_requests=80,
        max_seconds=15, mock={"chunks": 60, "delay_ms": C20_PACE_MS},
        what="20 at once, non-streaming, answer after 60 x 5 ms",
    ),
    Scenario(
        name="120k-stream-c20-flat",
        body="120k", stream=True, concurrency=20, requests=400, quick_requests=80,
        max_seconds=10, mock={"chunks": 100},
        what="20 at once, infinitely fast upstream: CPU-bound capacity",
    ),
    Scenario(
        name="120k-long-c1",
        body="120k", stream=True, concurrency=1, requests=40, quick_requests=10,
        max_seconds=40, mock={"chunks": 2000},
        what="a 2000-chunk answer in bursts: proxy CPU per chunk",
    ),
    Scenario(
        name="120k-paced-c1",
        body="120k", stream=True, concurrency=1, requests=10, quick_requests=3,
        max_seconds=40, mock={"chunks": 400, "delay_ms": PACED_MS},
        what="400 chunks 1 ms apart: each read, translated and written alone",
    ),
)
# fmt: on


# ---- processes -------------------------------------------------------------------------------


@dataclass
class Child:
    name: str
    process: asyncio.subprocess.Process

    @property
    def pid(self) -> int:
        return self.process.pid

    async def stop(self) -> None:
        if self.process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.process.wait(), STOP_TIMEOUT_S)
        except asyncio.TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            await self.process.wait()


async def _read_line_with(
    child: Child, prefix: str, log_path: Path, timeout: float = START_TIMEOUT_S
) -> str:
    """The first stdout line starting with `prefix` (the child's way of saying it is ready)."""
    assert child.process.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = await asyncio.wait_for(
                child.process.stdout.readline(), deadline - time.monotonic()
            )
        except asyncio.TimeoutError:
            break
        if not line:
            break
        text = line.decode().strip()
        if text.startswith(prefix):
            return text[len(prefix) :]
    detail = log_path.read_text()[-2000:] if log_path.exists() else ""
    raise SystemExit(f"bench: {child.name} did not start (see {log_path}):\n{detail}")


async def start_mock(workdir: Path) -> tuple[Child, str]:
    log_path = workdir / "mock.log"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(MOCK_SCRIPT),
        "--port",
        "0",
        stdout=asyncio.subprocess.PIPE,
        stderr=log_path.open("wb"),
    )
    child = Child("mock upstream", process)
    url = await _read_line_with(child, "listening on ", log_path)
    return child, url


def proxy_env(workdir: Path, mock_url: str) -> dict[str, str]:
    """Credentials pointing at the mock, a known token, and private config/log directories."""
    env = startup.clean_env(os.environ)
    for name in ("CONFIG", "STATE", "CACHE", "DATA"):
        path = workdir / name.lower()
        path.mkdir(exist_ok=True)
        env[f"XDG_{name}_HOME"] = str(path)
    config = workdir / "config" / "cc-proxy" / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(bodies.bench_config_toml())
    for name in list(env):
        if name.startswith(("CC_PROXY_", "CF_", "CLOUDFLARE_", "ANTHROPIC_")):
            del env[name]
    env.update(
        {
            "CC_PROXY_PROVIDER": "cloudflare",
            "CF_AI_GATEWAY_URL": mock_url + GATEWAY_PATH,
            "CF_AIG_TOKEN": "bench-gateway-token",
            "CC_PROXY_TOKEN": TOKEN,
            "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring",
        }
    )
    return env


async def start_proxy(
    env: dict[str, str],
    workdir: Path,
    loop: str,
    wrapper: Path | None = None,
    profile_out: Path | None = None,
) -> tuple[Child, str]:
    log_path = workdir / "proxy.stderr"
    argv = ["serve", bodies.BENCH_ALIAS, "--quiet"]
    if profile_out is not None:
        env = {**env, "BENCH_PROFILE_OUT": str(profile_out)}
        command = [sys.executable, str(PROFILE_WRAPPER), *argv]
    elif wrapper is not None:
        command = [sys.executable, str(wrapper), *argv]
    elif loop == "uvloop":
        command = [sys.executable, "-c", UVLOOP_BOOT, *argv]
    else:
        command = [startup.venv_script("cc-proxy"), *argv]
    process = await asyncio.create_subprocess_exec(
        *command, env=env, stdout=asyncio.subprocess.PIPE, stderr=log_path.open("wb")
    )
    child = Child("cc-proxy serve", process)
    url = await _read_line_with(child, "export ANTHROPIC_BASE_URL=", log_path)
    return child, url.strip("'\"")


def _free_port() -> int:
    """A loopback port nobody holds now (ref_proxy.py takes a port number, not a socket)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def start_reference(mock_url: str, workdir: Path) -> tuple[Child, str]:
    """bench/ref_proxy.py on orjson, asking the mock for the model cc-proxy asks for."""
    log_path = workdir / "reference.stderr"
    port = _free_port()
    env = startup.clean_env(os.environ)
    env.update(
        {
            "REF_ORJSON": "1",
            "REF_UPSTREAM": mock_url + "/v1",
            "REF_MODEL": bodies.upstream_model(),
        }
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(REFERENCE_SCRIPT),
        "--port",
        str(port),
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=log_path.open("wb"),
    )
    child = Child("reference translator", process)
    # It prints nothing when ready: wait until the port accepts a connection.
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline and process.returncode is None:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.close()
        await writer.wait_closed()
        return child, f"http://127.0.0.1:{port}"
    await child.stop()
    detail = log_path.read_text()[-2000:] if log_path.exists() else ""
    raise SystemExit(f"bench: the reference translator did not start (see {log_path}):\n{detail}")


# ---- one scenario ----------------------------------------------------------------------------


# Side names in results.json ("proxy" is cc-proxy, as in earlier results) and in the table.
SIDES = ("direct", "proxy", "reference")
SIDE_LABELS = {"direct": "direct", "proxy": "cc-proxy", "reference": "reference"}


@dataclass
class RunStats:
    """One run of one side: latency quantiles in ms, throughput, and (for a translating side)
    the CPU and memory of the process that served it."""

    side: str
    round: int
    requests: int
    errors: int
    ttft_p50: float | None
    ttft_p99: float | None
    total_p50: float
    total_p99: float
    rps: float
    server_cpu_ms: float | None = None
    cpu_ms_per_1k_chunks: float | None = None
    cpu_ms_per_request: float | None = None
    peak_rss_mb: float | None = None
    mock_cpu_ms_per_request: float | None = None
    # Warm-up included: how many upstream connections served how many upstream requests.
    upstream_connections: int = 0
    upstream_requests: int = 0
    first_errors: list[str] = field(default_factory=list)


def quantile(values: list[float], q: float) -> float:
    """Linear-interpolated quantile (q in 0..1)."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def run_stats(side: str, round_: int, result: loadgen.RunResult, *, stream: bool) -> RunStats:
    ok = result.ok_samples
    if not ok:
        raise SystemExit(f"bench: every {side} request failed: {result.errors[:3]}")
    totals = [s.total_s * 1000 for s in ok]
    ttfts = [s.ttft_s * 1000 for s in ok if s.ttft_s is not None]
    return RunStats(
        side=side,
        round=round_,
        requests=len(ok),
        errors=len(result.errors),
        ttft_p50=quantile(ttfts, 0.5) if stream and ttfts else None,
        ttft_p99=quantile(ttfts, 0.99) if stream and ttfts else None,
        total_p50=quantile(totals, 0.5),
        total_p99=quantile(totals, 0.99),
        rps=len(ok) / result.wall_s if result.wall_s > 0 else 0.0,
        first_errors=result.errors[:3],
    )


async def mock_call(mock_url: str, path: str, payload: dict[str, Any] | None = None) -> Any:
    async with aiohttp.ClientSession(trust_env=False) as session:
        if payload is None:
            request = session.get(mock_url + path)
        else:
            request = session.post(mock_url + path, data=orjson.dumps(payload))
        async with request as resp:
            body = await resp.read()
            if resp.status != 200:
                raise SystemExit(f"bench: mock {path} answered {resp.status}: {body[:300]!r}")
            return orjson.loads(body)


@dataclass
class Bench:
    mock: Child
    mock_url: str
    proxy: Child
    proxy_url: str
    reference: Child | None
    reference_url: str | None
    bodies: dict[tuple[str, bool], bodies.BodyPair]
    rounds: int
    quick: bool
    session_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def server(self, side: str) -> Child | None:
        """The process whose CPU and memory a side's runs are charged with (none for direct)."""
        return {"proxy": self.proxy, "reference": self.reference}.get(side)

    def targets(self, scenario: Scenario) -> list[loadgen.Target]:
        pair = self.bodies[(scenario.body, scenario.stream)]
        accept = "text/event-stream" if scenario.stream else "application/json"
        direct = loadgen.Target(
            side="direct",
            url=f"{self.mock_url}{GATEWAY_PATH}/compat/chat/completions",
            body=pair.openai,
            headers={
                "Content-Type": "application/json",
                "Accept": accept,
                "cf-aig-authorization": "Bearer bench-gateway-token",
                "User-Agent": "cc-proxy/bench",
                "x-session-affinity": self.session_id,
            },
            protocol="openai",
            stream=scenario.stream,
        )
        # What Claude Code sends (docs/wire.md, "Claude Code's environment"), trimmed to what matters.
        anthropic_headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "Authorization": f"Bearer {TOKEN}",
            "anthropic-version": "2023-06-01",
            "anthropic-beta": "claude-code-20250219,interleaved-thinking-2025-05-14",
            "x-app": "cli",
            "User-Agent": "claude-cli/2.1.330 (external, sdk-cli)",
            "x-claude-code-session-id": self.session_id,
        }
        targets = [direct]
        for side, url in (("proxy", self.proxy_url), ("reference", self.reference_url)):
            if url is None:
                continue
            targets.append(
                loadgen.Target(
                    side=side,
                    url=f"{url}/v1/messages?beta=true",
                    body=pair.anthropic,
                    headers=anthropic_headers,
                    protocol="anthropic",
                    stream=scenario.stream,
                )
            )
        return targets

    async def check_answers(
        self, scenario: Scenario, targets: list[loadgen.Target]
    ) -> dict[str, Any]:
        """Every side must say the same thing before any is timed."""
        stats = await mock_call(self.mock_url, "/_mock/stats")
        expected_tools = ("Bash",) if scenario.mock.get("tool_call") else ()
        for target in targets:
            answer = await loadgen.fetch_answer(target)
            if answer.text != stats["expected_text"] or answer.tools != expected_tools:
                raise SystemExit(
                    f"bench: {scenario.name}: {target.side} answered {answer.text[:80]!r} "
                    f"tools={answer.tools}, expected {stats['expected_text'][:80]!r} "
                    f"tools={expected_tools}"
                )
        return stats

    async def run_scenario(self, scenario: Scenario) -> dict[str, Any]:
        config = await mock_call(self.mock_url, "/_mock/config", scenario.mock)
        chunks_per_reply = config["streamed_chunks_per_reply"] if scenario.stream else 0
        targets = self.targets(scenario)
        await self.check_answers(scenario, targets)
        requests = scenario.quick_requests if self.quick else scenario.requests
        servers = {t.side: child for t in targets if (child := self.server(t.side)) is not None}
        for child in servers.values():
            procstat.reset_peak_rss(child.pid)
        runs: list[RunStats] = []
        for round_ in range(self.rounds):
            for target in targets:  # A B C A B C ...
                runs.append(
                    await self._one_run(scenario, target, round_, requests, chunks_per_reply)
                )
        peaks = {side: procstat.peak_rss_mb(child.pid) for side, child in servers.items()}
        return summarize(scenario, runs, peaks, chunks_per_reply)

    async def _one_run(
        self,
        scenario: Scenario,
        target: loadgen.Target,
        round_: int,
        requests: int,
        chunks_per_reply: int,
    ) -> RunStats:
        marks: dict[str, float] = {}
        server = self.server(target.side)

        def measure_start() -> None:
            if server is not None:
                marks["server_cpu"] = procstat.cpu_seconds(server.pid)
            marks["mock_cpu"] = procstat.cpu_seconds(self.mock.pid)

        before = await mock_call(self.mock_url, "/_mock/stats")
        result = await loadgen.run_load(
            target,
            concurrency=scenario.concurrency,
            requests=requests,
            max_seconds=scenario.max_seconds,
            on_measure_start=measure_start,
        )
        mock_cpu_ms = (procstat.cpu_seconds(self.mock.pid) - marks.get("mock_cpu", 0)) * 1000
        after = await mock_call(self.mock_url, "/_mock/stats")
        stats = run_stats(target.side, round_, result, stream=scenario.stream)
        # Each stats call opens one connection of its own (counted in `after`).
        stats.upstream_connections = after["connections"] - before["connections"] - 1
        stats.upstream_requests = after["requests"] - before["requests"]
        stats.mock_cpu_ms_per_request = mock_cpu_ms / stats.requests
        if server is not None:
            server_cpu_ms = (procstat.cpu_seconds(server.pid) - marks.get("server_cpu", 0)) * 1000
            stats.server_cpu_ms = server_cpu_ms
            stats.cpu_ms_per_request = server_cpu_ms / stats.requests
            if chunks_per_reply:
                stats.cpu_ms_per_1k_chunks = (
                    server_cpu_ms / (stats.requests * chunks_per_reply) * 1000
                )
            stats.peak_rss_mb = procstat.peak_rss_mb(server.pid)
        return stats


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


_SIDE_KEYS = (
    "ttft_p50",
    "ttft_p99",
    "total_p50",
    "total_p99",
    "rps",
    "cpu_ms_per_1k_chunks",
    "cpu_ms_per_request",
    "mock_cpu_ms_per_request",
)
_LATENCY_KEYS = ("ttft_p50", "ttft_p99", "total_p50", "total_p99")


def _versus_direct(pairs: list[tuple[RunStats, RunStats]]) -> dict[str, float | None]:
    """A side against direct, paired per round: what it adds (diff) and how many times (ratio)."""
    compare: dict[str, float | None] = {}
    for key in (*_LATENCY_KEYS, "rps"):
        diffs = [
            s_value - d_value
            for d, s in pairs
            if (d_value := getattr(d, key)) is not None and (s_value := getattr(s, key)) is not None
        ]
        ratios = [
            s_value / d_value
            for d, s in pairs
            if (d_value := getattr(d, key)) and (s_value := getattr(s, key)) is not None
        ]
        compare[f"{key}_diff"] = _median(diffs)
        compare[f"{key}_ratio"] = _median(ratios)
    return compare


def _versus_reference(
    rounds: list[tuple[RunStats, RunStats, RunStats]],
) -> dict[str, float | None]:
    """cc-proxy as a multiple of the reference, paired per round: the latency each adds to
    direct, and throughput and CPU as they are (the reference's own cost is the floor)."""
    ratios: dict[str, float | None] = {}
    for key in _LATENCY_KEYS:
        values = []
        for d, p, r in rounds:
            d_value, p_value, r_value = getattr(d, key), getattr(p, key), getattr(r, key)
            if d_value is None or p_value is None or r_value is None:
                continue
            # A reference that adds nothing measurable makes the ratio meaningless, not huge.
            if r_value - d_value > 0.01:
                values.append((p_value - d_value) / (r_value - d_value))
        ratios[f"added_{key}"] = _median(values)
    for key in ("rps", "cpu_ms_per_request", "cpu_ms_per_1k_chunks"):
        ratios[key] = _median(
            [
                p_value / r_value
                for _, p, r in rounds
                if (r_value := getattr(r, key)) and (p_value := getattr(p, key)) is not None
            ]
        )
    return ratios


def summarize(
    scenario: Scenario,
    runs: list[RunStats],
    peak_rss: dict[str, float],
    chunks_per_reply: int,
) -> dict[str, Any]:
    """Medians over rounds per side; differences and ratios paired round by round."""
    by_side = {side: [r for r in runs if r.side == side] for side in SIDES}
    sides: dict[str, dict[str, Any]] = {}
    for side, mine in by_side.items():
        if not mine:
            continue
        sides[side] = {key: _median([getattr(r, key) for r in mine]) for key in _SIDE_KEYS}
        sides[side]["requests"] = sum(r.requests for r in mine)
        sides[side]["upstream_connections"] = sum(r.upstream_connections for r in mine)
        sides[side]["upstream_requests"] = sum(r.upstream_requests for r in mine)
        sides[side]["errors"] = sum(r.errors for r in mine)
        sides[side]["peak_rss_mb"] = peak_rss.get(side)
    direct = by_side["direct"]
    result: dict[str, Any] = {
        "scenario": asdict(scenario),
        "streamed_chunks_per_reply": chunks_per_reply,
        **sides,
        "compare": _versus_direct(list(zip(direct, by_side["proxy"], strict=True))),
        "proxy_peak_rss_mb": peak_rss.get("proxy"),
        "runs": [asdict(r) for r in runs],
    }
    if by_side["reference"]:
        result["compare_reference"] = _versus_direct(
            list(zip(direct, by_side["reference"], strict=True))
        )
        vs = _versus_reference(
            list(zip(direct, by_side["proxy"], by_side["reference"], strict=True))
        )
        vs["peak_rss_mb"] = (
            peak_rss["proxy"] / peak_rss["reference"] if peak_rss.get("reference") else None
        )
        result["vs_reference"] = vs
    return result


# ---- output ----------------------------------------------------------------------------------


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def table(results: list[dict[str, Any]]) -> str:
    header = (
        f"{'scenario':<22} {'side':<10} {'ttft p50':>9} {'ttft p99':>9} {'total p50':>10} "
        f"{'total p99':>10} {'req/s':>8} {'cpu/1k ch':>10} {'cpu/req':>8} {'peak RSS':>9}"
    )
    lines = [header, "-" * len(header)]
    for r in results:
        name = r["scenario"]["name"]
        first = True
        for side in SIDES:
            if side not in r:
                continue
            s = r[side]
            served = side != "direct"
            lines.append(
                f"{name if first else '':<22} {SIDE_LABELS[side]:<10} {_fmt(s['ttft_p50']):>9} "
                f"{_fmt(s['ttft_p99']):>9} {_fmt(s['total_p50']):>10} {_fmt(s['total_p99']):>10} "
                f"{_fmt(s['rps']):>8} "
                f"{_fmt(s['cpu_ms_per_1k_chunks']) if served else '':>10} "
                f"{_fmt(s['cpu_ms_per_request'], 2) if served else '':>8} "
                f"{_fmt(s.get('peak_rss_mb')) if served else '':>9}"
            )
            first = False
        for label, key in (("+cc-proxy", "compare"), ("+reference", "compare_reference")):
            if key not in r:
                continue
            c = r[key]
            lines.append(
                f"{'':<22} {label:<10} {_fmt(c['ttft_p50_diff'], 2):>9} "
                f"{_fmt(c['ttft_p99_diff'], 2):>9} {_fmt(c['total_p50_diff'], 2):>10} "
                f"{_fmt(c['total_p99_diff'], 2):>10} {_fmt(c['rps_ratio'], 2):>8}"
            )
        if "vs_reference" in r:
            v = r["vs_reference"]
            lines.append(
                f"{'':<22} {'cc/ref':<10} {_fmt(v['added_ttft_p50'], 2):>9} "
                f"{_fmt(v['added_ttft_p99'], 2):>9} {_fmt(v['added_total_p50'], 2):>10} "
                f"{_fmt(v['added_total_p99'], 2):>10} {_fmt(v['rps'], 2):>8} "
                f"{_fmt(v['cpu_ms_per_1k_chunks'], 2):>10} {_fmt(v['cpu_ms_per_request'], 2):>8} "
                f"{_fmt(v['peak_rss_mb'], 2):>9}"
            )
    lines.append(
        "(ms, medians over rounds. +side: latency added to direct, req/s as a fraction of "
        "direct's;\n cc/ref: cc-proxy as a multiple of the reference, of the added latency, "
        "req/s, CPU and RSS; all paired per round)"
    )
    return "\n".join(lines)


@dataclass(frozen=True)
class Check:
    target: str
    measured: str
    met: bool | None


def checks(
    results: dict[str, dict[str, Any]], overall_peak: float | None, starts: dict[str, Any]
) -> list[Check]:
    found: list[Check] = []

    def add(target: str, measured: float | None, limit: float, fmt: Callable[[float], str]) -> None:
        if measured is None:
            found.append(Check(target, "not measured", None))
        else:
            found.append(Check(target, fmt(measured), measured <= limit))

    ms = lambda v: f"{v:+.2f} ms"  # noqa: E731
    if "120k-stream-c1" in results:
        add(
            "added time to first delta, 120 KB, c1, p50 <= 3 ms",
            results["120k-stream-c1"]["compare"]["ttft_p50_diff"],
            3,
            ms,
        )
    if "2m-stream-c1" in results:
        add(
            "a 2 MB request adds <= 15 ms (first delta, p50)",
            results["2m-stream-c1"]["compare"]["ttft_p50_diff"],
            15,
            ms,
        )
    if "2m-json-c1" in results:
        add(
            "a 2 MB request adds <= 15 ms (non-streaming total, p50)",
            results["2m-json-c1"]["compare"]["total_p50_diff"],
            15,
            ms,
        )
    if "120k-stream-c20" in results:
        r = results["120k-stream-c20"]
        ratio = r["compare"]["rps_ratio"]
        found.append(Check("req/s at c20 >= 80 % of direct", f"{ratio:.0%}", ratio >= 0.8))
        p50, p99 = r["proxy"]["ttft_p50"], r["proxy"]["ttft_p99"]
        found.append(
            Check(
                "first-token p99 <= 2 x p50 at c20 (through the proxy)",
                f"p50 {p50:.1f} ms, p99 {p99:.1f} ms ({p99 / p50:.2f} x)",
                p99 <= 2 * p50,
            )
        )
    if "120k-long-c1" in results:
        add(
            "proxy CPU per 1000 streamed chunks <= 20 ms",
            results["120k-long-c1"]["proxy"]["cpu_ms_per_1k_chunks"],
            20,
            lambda v: f"{v:.1f} ms",
        )
    if overall_peak is not None:
        add("proxy peak RSS <= 60 MB", overall_peak, 60, lambda v: f"{v:.1f} MB")
    found.extend(reference_checks(results))
    if "help" in starts:
        add("cc-proxy --help <= 300 ms", starts["help"]["median_ms"], 300, lambda v: f"{v:.0f} ms")
    if "launch" in starts:
        add(
            "command start to claude spawned <= 350 ms",
            starts["launch"]["median_ms"],
            350,
            lambda v: f"{v:.0f} ms",
        )
    return found


# (scenario, vs_reference key, limit, at least?, what): cc-proxy against the reference's floor.
REFERENCE_TARGETS = (
    ("120k-burst-c1", "cpu_ms_per_request", 1.5, False, "CPU per request, 120 KB, 100 chunks"),
    ("120k-stream-c20-flat", "rps", 0.7, True, "req/s at c20, CPU-bound"),
    ("120k-stream-c1", "added_ttft_p50", 1.5, False, "added time to first delta, p50"),
    ("120k-paced-c1", "cpu_ms_per_1k_chunks", 1.2, False, "CPU per chunk, 400 chunks 1 ms apart"),
)


def reference_checks(results: dict[str, dict[str, Any]]) -> list[Check]:
    found = []
    for name, key, limit, at_least, what in REFERENCE_TARGETS:
        if name not in results or "vs_reference" not in results[name]:
            continue
        ratio = results[name]["vs_reference"][key]
        bound = f"{'>=' if at_least else '<='} {limit} x the reference"
        target = f"{what} ({name}) {bound}"
        if ratio is None:
            found.append(Check(target, "not measured", None))
        else:
            met = ratio >= limit if at_least else ratio <= limit
            found.append(Check(target, f"{ratio:.2f} x", met))
    return found


def environment() -> dict[str, Any]:
    from importlib.metadata import version

    def pkg(name: str) -> str:
        try:
            return version(name)
        except Exception:
            return "absent"

    commit = subprocess.run(
        ["git", "-C", str(BENCH_DIR), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "loadavg": os.getloadavg(),
        "commit": commit,
        "aiohttp": pkg("aiohttp"),
        "orjson": pkg("orjson"),
        "uvloop": pkg("uvloop"),
    }


# ---- main ------------------------------------------------------------------------------------


@contextlib.contextmanager
def workdir(keep: bool) -> Iterator[Path]:
    if keep:
        path = Path(tempfile.mkdtemp(prefix="cc-proxy-bench-"))
        print(f"bench: keeping logs in {path}", file=sys.stderr)
        yield path
    else:
        with tempfile.TemporaryDirectory(prefix="cc-proxy-bench-") as name:
            yield Path(name)


def build_bodies(names: set[str]) -> dict[tuple[str, bool], bodies.BodyPair]:
    requests: dict[str, dict[str, Any]] = {}
    if "120k" in names:
        requests["120k"] = bodies.base_request()
    if "2m" in names:
        requests["2m"] = bodies.grown_request()
    return {
        (name, stream): bodies.body_pair(name, request, stream=stream)
        for name, request in requests.items()
        for stream in (True, False)
    }


async def bench_traffic(
    args: argparse.Namespace, scenarios: list[Scenario], work: Path
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    pairs = build_bodies({s.body for s in scenarios})
    for (name, stream), pair in sorted(pairs.items()):
        print(
            f"bench: body {name} stream={stream}: Anthropic {len(pair.anthropic) / 1024:.0f} KiB, "
            f"OpenAI {len(pair.openai) / 1024:.0f} KiB",
            file=sys.stderr,
        )
    mock, mock_url = await start_mock(work)
    proxy: Child | None = None
    reference: Child | None = None
    reference_url: str | None = None
    profile_out = args.profile / "current.prof" if args.profile else None
    try:
        env = proxy_env(work, mock_url)
        proxy, proxy_url = await start_proxy(
            env, work, args.proxy_loop, args.proxy_wrapper, profile_out
        )
        if not args.no_reference:
            reference, reference_url = await start_reference(mock_url, work)
        await asyncio.sleep(0.2)
        idle = {
            "rss_mb": procstat.rss_mb(proxy.pid),
            "peak_rss_mb": procstat.peak_rss_mb(proxy.pid),
        }
        if reference is not None:
            idle["reference_rss_mb"] = procstat.rss_mb(reference.pid)
        bench = Bench(
            mock,
            mock_url,
            proxy,
            proxy_url,
            reference,
            reference_url,
            pairs,
            args.rounds,
            args.quick,
        )
        results = []
        for scenario in scenarios:
            started = time.monotonic()
            print(
                f"bench: {scenario.name} ({scenario.what}) ...", file=sys.stderr, end="", flush=True
            )
            async with (
                sampling(args.py_spy, proxy.pid, scenario.name),
                profiling(profile_out, proxy, scenario.name),
            ):
                results.append(await bench.run_scenario(scenario))
            print(f" {time.monotonic() - started:.1f} s", file=sys.stderr)
        proxy_info = {
            "idle": idle,
            "peak_rss_mb_overall": max(
                [r["proxy_peak_rss_mb"] for r in results] + [idle["peak_rss_mb"]]
            ),
            "loop": args.proxy_loop,
            "profiled": profile_out is not None,
        }
        if reference is not None:
            proxy_info["reference_peak_rss_mb_overall"] = max(
                r["reference"]["peak_rss_mb"] for r in results
            )
        return results, proxy_info
    finally:
        if reference is not None:
            await reference.stop()
        if proxy is not None:
            await proxy.stop()
        await mock.stop()


PROFILE_TOP = 40


@contextlib.asynccontextmanager
async def profiling(out: Path | None, proxy: Child, name: str) -> AsyncIterator[None]:
    """With --profile: cProfile runs in the proxy for the scenario (bench/profiled_proxy.py,
    started and stopped by signal), and its functions by cumulative time go to
    DIR/<scenario>.txt, the raw stats to DIR/<scenario>.prof (for pstats or snakeviz)."""
    if out is None:
        yield
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    proxy.process.send_signal(signal.SIGUSR1)
    try:
        yield
    finally:
        proxy.process.send_signal(signal.SIGUSR2)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while not out.exists() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if out.exists():
            stats_path = out.with_name(f"{name}.prof")
            out.replace(stats_path)
            _write_top(stats_path, out.with_name(f"{name}.txt"))
        else:
            print(f"bench: no profile from the proxy for {name}", file=sys.stderr)


def _write_top(stats_path: Path, text_path: Path) -> None:
    import io
    import pstats

    buffer = io.StringIO()
    stats = pstats.Stats(str(stats_path), stream=buffer)
    stats.sort_stats("cumulative").print_stats(PROFILE_TOP)
    buffer.write("\n")
    stats.sort_stats("tottime").print_stats(PROFILE_TOP)
    text_path.write_text(buffer.getvalue())


@contextlib.asynccontextmanager
async def sampling(directory: Path | None, pid: int, name: str) -> AsyncIterator[None]:
    """With --py-spy: py-spy samples the proxy during the scenario (idle time left out), and
    writes a collapsed-stack file (for flamegraph.pl / speedscope) and a top-of-profile view."""
    if directory is None:
        yield
        return
    directory.mkdir(parents=True, exist_ok=True)
    out = directory / f"{name}.collapsed"
    process = await asyncio.create_subprocess_exec(
        startup.venv_script("py-spy"),
        "record",
        "--pid",
        str(pid),
        "--rate",
        "1000",
        "--format",
        "raw",
        "--output",
        str(out),
        "--nonblocking",
        "--gil",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    await asyncio.sleep(0.5)  # let it attach
    try:
        yield
    finally:
        process.send_signal(signal.SIGINT)
        try:
            await asyncio.wait_for(process.wait(), STOP_TIMEOUT_S)
        except asyncio.TimeoutError:
            process.kill()
            await process.wait()


def bench_startup(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    cc_proxy = startup.venv_script("cc-proxy")
    env = proxy_env(work, "http://127.0.0.1:9")  # never contacted: the fake claude exits at once
    repeats = 5 if args.quick else 10
    help_timing = startup.help_time(cc_proxy, env, repeats)
    launch, exit_ = startup.launch_time(cc_proxy, env, work, repeats)
    return {"help": asdict(help_timing), "launch": asdict(launch), "run_exit": asdict(exit_)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="cc-proxy vs the zero-proxy baseline")
    parser.add_argument("--quick", action="store_true", help="few requests, 2 rounds: a smoke run")
    parser.add_argument("--rounds", type=int, default=None, help="A B rounds (default 3, quick 2)")
    parser.add_argument("--only", nargs="*", default=None, help="scenario names to run")
    parser.add_argument("--no-startup", action="store_true", help="skip --help / launch timing")
    parser.add_argument("--no-traffic", action="store_true", help="only --help / launch timing")
    parser.add_argument("--proxy-loop", choices=("asyncio", "uvloop"), default="asyncio")
    parser.add_argument(
        "--proxy-wrapper",
        type=Path,
        default=None,
        metavar="SCRIPT",
        help="run the proxy as `python SCRIPT serve ...` (instrumentation experiments)",
    )
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write results")
    parser.add_argument(
        "--no-reference",
        action="store_true",
        help="skip the reference translator (side C): direct against cc-proxy only",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        metavar="DIR",
        help="cProfile the proxy per scenario: DIR/<scenario>.txt (top functions) and .prof",
    )
    parser.add_argument(
        "--py-spy",
        type=Path,
        default=None,
        metavar="DIR",
        help="sample the proxy with py-spy per scenario into DIR/<scenario>.collapsed",
    )
    parser.add_argument("--keep-logs", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)
    args.rounds = args.rounds or (2 if args.quick else 3)
    if args.profile is not None and (
        args.proxy_wrapper is not None or args.proxy_loop != "asyncio"
    ):
        parser.error("--profile runs the proxy through its own wrapper, on asyncio")
    if not 1 <= args.rounds <= 20:
        parser.error("--rounds must be 1..20")
    scenarios = [s for s in SCENARIOS if args.only is None or s.name in args.only]
    if args.only and len(scenarios) != len(args.only):
        parser.error(f"unknown scenario; known: {', '.join(s.name for s in SCENARIOS)}")

    started = time.monotonic()
    env_before = environment()
    with workdir(args.keep_logs) as work:
        results: list[dict[str, Any]] = []
        proxy_info: dict[str, Any] = {}
        if not args.no_traffic and scenarios:
            results, proxy_info = asyncio.run(bench_traffic(args, scenarios, work))
        if results:
            print(table(results), flush=True)
        starts: dict[str, Any] = {}
        if not args.no_startup:
            try:
                starts = bench_startup(args, work)
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                print(f"bench: start-up timing failed: {exc}", file=sys.stderr)

    by_name = {r["scenario"]["name"]: r for r in results}
    found = checks(by_name, proxy_info.get("peak_rss_mb_overall"), starts)
    if results:
        print(
            f"proxy RSS: {proxy_info['idle']['rss_mb']:.1f} MB idle, "
            f"{proxy_info['peak_rss_mb_overall']:.1f} MB peak over the run "
            f"(event loop: {proxy_info['loop']})"
        )
        if "reference_peak_rss_mb_overall" in proxy_info:
            print(
                f"reference RSS: {proxy_info['idle']['reference_rss_mb']:.1f} MB idle, "
                f"{proxy_info['reference_peak_rss_mb_overall']:.1f} MB peak over the run"
            )
        if proxy_info.get("profiled"):
            print(f"(profiled under cProfile: cc-proxy's timings are inflated; see {args.profile})")
    if starts:
        h, launch, ended = starts["help"], starts["launch"], starts["run_exit"]
        print(
            f"cc-proxy --help: {h['median_ms']:.0f} ms median ({h['min_ms']:.0f}-{h['max_ms']:.0f}, "
            f"n={h['samples']}); run -> claude spawned: {launch['median_ms']:.0f} ms median "
            f"({launch['min_ms']:.0f}-{launch['max_ms']:.0f}); run -> exit with a claude that "
            f"exits at once: {ended['median_ms']:.0f} ms"
        )
    print("targets:")
    for check in found:
        mark = {True: "met   ", False: "MISSED", None: "n/a   "}[check.met]
        print(f"  {mark} {check.target}: {check.measured}")
    elapsed = time.monotonic() - started
    print(
        f"({elapsed:.0f} s; {env_before['cpus']} CPUs; load average before "
        f"{env_before['loadavg'][0]:.2f}, after {os.getloadavg()[0]:.2f})"
    )
    report = {
        "command": " ".join(
            ["python", "bench/run.py", *(argv if argv is not None else sys.argv[1:])]
        ),
        "environment": env_before,
        "load_average_after": os.getloadavg(),
        "elapsed_s": elapsed,
        "rounds": args.rounds,
        "quick": args.quick,
        "proxy": proxy_info,
        "scenarios": results,
        "startup": starts,
        "targets": [asdict(c) for c in found],
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    print(f"(full results: {args.json})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
