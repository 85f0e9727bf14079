"""Two (or more) builds of cc-proxy served at once, rounds interleaved: CPU per request A/B.

    git worktree add /tmp/cc-before <commit>     # or: git archive <commit> | tar -x -C DIR
    python bench/ab.py --build before=/tmp/cc-before --build after=. \\
        --rounds 10 120k-json-c1 120k-burst-c1 2m-json-c1

Each build is a checkout whose `cc_nemo` is imported instead of the installed one; every build
runs as its own `cc-proxy serve` against one mock upstream, and each round sends a short run of
the scenario to every build in turn (the order alternates), so machine noise falls on all of
them alike. Prints, per scenario and build, the proxy CPU per request (best and median round),
per 1000 chunks, and the time to the first delta. run.py's own table is for the absolute
figures; this is for "did the change make it cheaper", on a machine too busy for wall time.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

# isort: split
# Sibling modules: bench/ is on sys.path when run as `python bench/ab.py`.
import loadgen
import procstat
import run

WRAPPER = """import sys
sys.path.insert(0, {root!r})
import cc_nemo
if not cc_nemo.__file__.startswith({root!r}):
    raise SystemExit("ab: cc_nemo came from " + cc_nemo.__file__ + ", not " + {root!r})
from cc_nemo.cli.main import main
sys.argv[0] = "cc-proxy"
main()
"""
# A short run per round: enough requests to read CPU time from /proc, few enough for many rounds.
REQUESTS = {"120k-paced-c1": 4, "2m-stream-c1": 10, "2m-json-c1": 15, "120k-stream-c1": 20}
DEFAULT_REQUESTS = 40
CONCURRENT_REQUESTS = 100


@dataclass
class Samples:
    cpu_ms: list[float] = field(default_factory=list)
    ttft_ms: list[float] = field(default_factory=list)
    peak_rss_mb: float = 0.0


def parse_build(text: str) -> tuple[str, Path]:
    name, sep, path = text.partition("=")
    root = Path(path).resolve()
    if not sep or not name or not (root / "cc_nemo" / "__init__.py").exists():
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME=DIR, DIR holding cc_nemo/")
    return name, root


async def measure(
    builds: list[tuple[str, Path]], scenarios: list[run.Scenario], rounds: int
) -> None:
    pairs = run.build_bodies({s.body for s in scenarios})
    with tempfile.TemporaryDirectory(prefix="cc-proxy-ab-") as name:
        work = Path(name)
        mock, mock_url = await run.start_mock(work)
        proxies: dict[str, tuple[run.Child, str]] = {}
        try:
            for build, root in builds:
                home = work / build
                home.mkdir()
                wrapper = home / "proxy.py"
                wrapper.write_text(WRAPPER.format(root=str(root)))
                env = run.proxy_env(home, mock_url)
                proxies[build] = await run.start_proxy(env, home, "asyncio", wrapper)
            for scenario in scenarios:
                await one_scenario(scenario, pairs, mock, mock_url, proxies, rounds)
        finally:
            for child, _ in proxies.values():
                await child.stop()
            await mock.stop()


async def one_scenario(
    scenario: run.Scenario,
    pairs: dict[tuple[str, bool], run.bodies.BodyPair],
    mock: run.Child,
    mock_url: str,
    proxies: dict[str, tuple[run.Child, str]],
    rounds: int,
) -> None:
    config = await run.mock_call(mock_url, "/_mock/config", scenario.mock)
    chunks = config["streamed_chunks_per_reply"] if scenario.stream else 0
    requests = (
        CONCURRENT_REQUESTS
        if scenario.concurrency > 1
        else REQUESTS.get(scenario.name, DEFAULT_REQUESTS)
    )
    names = list(proxies)
    samples = {build: Samples() for build in names}
    for round_ in range(rounds):
        for build in names if round_ % 2 == 0 else reversed(names):
            child, url = proxies[build]
            bench = run.Bench(mock, mock_url, child, url, None, None, pairs, 1, True)
            target = bench.targets(scenario)[1]
            started: dict[str, float] = {}
            result = await loadgen.run_load(
                target,
                concurrency=scenario.concurrency,
                requests=requests,
                max_seconds=scenario.max_seconds,
                on_measure_start=lambda c=child, s=started: s.update(
                    cpu=procstat.cpu_seconds(c.pid)
                ),
            )
            ok = result.ok_samples
            if not ok or result.errors:
                raise SystemExit(f"ab: {build} {scenario.name}: {result.errors[:3]}")
            cpu_ms = (procstat.cpu_seconds(child.pid) - started["cpu"]) * 1000
            mine = samples[build]
            mine.cpu_ms.append(cpu_ms / len(ok))
            ttfts = [s.ttft_s * 1000 for s in ok if s.ttft_s is not None]
            if ttfts:
                mine.ttft_ms.append(statistics.median(ttfts))
            mine.peak_rss_mb = max(mine.peak_rss_mb, procstat.peak_rss_mb(child.pid))
    base = statistics.median(samples[names[0]].cpu_ms)
    for build in names:
        mine = samples[build]
        median = statistics.median(mine.cpu_ms)
        line = (
            f"{scenario.name:<22} {build:<10} cpu/req best {min(mine.cpu_ms):7.3f} "
            f"median {median:7.3f} ms ({median / base:.2f} x)"
        )
        if chunks:
            line += f"  per 1k chunks {median / chunks * 1000:6.1f} ms"
        if mine.ttft_ms:
            line += f"  ttft p50 {statistics.median(mine.ttft_ms):6.2f} ms"
        print(line + f"  peak RSS {mine.peak_rss_mb:.1f} MB", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="CPU per request of several builds, interleaved")
    parser.add_argument(
        "--build",
        dest="builds",
        action="append",
        type=parse_build,
        required=True,
        metavar="NAME=DIR",
        help="a checkout to serve (give two or more; the first is the 1.00 x)",
    )
    parser.add_argument("--rounds", type=int, default=8, help="rounds per scenario (default 8)")
    parser.add_argument("scenarios", nargs="+", help="scenario names, as run.py --only takes")
    args = parser.parse_args(argv)
    known = {s.name: s for s in run.SCENARIOS}
    unknown = [name for name in args.scenarios if name not in known]
    if unknown:
        parser.error(f"unknown scenario {unknown[0]!r}; known: {', '.join(known)}")
    if len(args.builds) < 2 or len({name for name, _ in args.builds}) != len(args.builds):
        parser.error("give two or more --build NAME=DIR with different names")
    if not 1 <= args.rounds <= 100:
        parser.error("--rounds must be 1..100")
    asyncio.run(measure(args.builds, [known[n] for n in args.scenarios], args.rounds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
