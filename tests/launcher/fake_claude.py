"""A stand-in for the `claude` executable, driven by a JSON plan in $FAKE_CLAUDE_PLAN.

It reports what it was given (argv, environment, its own /proc cmdline, whether SIGINT was
ignored when it started) to the plan's `report` file, optionally talks to the proxy with the
official `anthropic` SDK, then waits for a signal, exits with a chosen code, or kills itself
with a chosen signal. Reports are replaced atomically so a test can poll them.

Plan keys (all optional but `report`):
  report: path of the JSON report
  calls: list of {"stream": bool, "prompt": str}; results go to report["calls"]
  wait_for_signal: true -> write report["ready"] and wait for SIGTERM/SIGHUP/SIGINT, adding
    each one to report["signals"] as it arrives, until one other than SIGINT comes
  ignore_signals: signal names ignored while waiting (a claude that will not stop)
  exit_on_signal: exit code used when a waited-for signal arrives (default 128+signal)
  stderr_marker: text written to stderr right before exiting
  exit_code: int (default 0)
  kill_self: signal name, e.g. "SIGKILL"
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

WAITED_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)


def write_report(path: Path, report: dict[str, Any]) -> None:
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(report))
    partial.replace(path)


def call_proxy(call: dict[str, Any]) -> dict[str, Any]:
    """One Messages request through the proxy, the way any Anthropic client makes it."""
    import anthropic

    client = anthropic.Anthropic(
        base_url=os.environ["ANTHROPIC_BASE_URL"],
        auth_token=os.environ["ANTHROPIC_AUTH_TOKEN"],
        api_key=None,
        max_retries=0,
        timeout=30,
    )
    request = {
        "model": os.environ["ANTHROPIC_MODEL"],
        "max_tokens": 256,
        "messages": [{"role": "user", "content": call.get("prompt", "hello")}],
    }
    try:
        if call.get("stream"):
            with client.messages.stream(**request) as stream:
                text = "".join(stream.text_stream)
                final = stream.get_final_message()
        else:
            final = client.messages.create(**request)
            text = "".join(b.text for b in final.content if b.type == "text")
    except anthropic.APIError as exc:
        return {"ok": False, "error": type(exc).__name__, "message": str(exc)}
    return {
        "ok": True,
        "text": text,
        "stop_reason": final.stop_reason,
        "input_tokens": final.usage.input_tokens,
        "output_tokens": final.usage.output_tokens,
    }


def wait_for_signals(report_path: Path, report: dict[str, Any], ignored: set[int]) -> int:
    """Block the waited signals and take them one by one with sigwait (no polling), recording
    each in the report as it arrives, until one other than SIGINT comes; return that one.

    SIGINT is recorded but does not end the wait: tests check whether it arrives. Signals
    pending with the terminating one are recorded too, whatever the delivery order."""
    waited = {sig for sig in WAITED_SIGNALS if sig not in ignored}
    for sig in ignored:
        signal.signal(sig, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_BLOCK, waited)
    received: list[int] = []
    report["ready"] = True
    write_report(report_path, report)
    while not any(sig != signal.SIGINT for sig in received):
        received.append(signal.sigwait(waited))
        while (info := signal.sigtimedwait(waited, 0)) is not None:
            received.append(info.si_signo)
        report["signals"] = [signal.Signals(sig).name for sig in received]
        write_report(report_path, report)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, waited)
    return next(sig for sig in received if sig != signal.SIGINT)


def main() -> int:
    plan = json.loads(os.environ["FAKE_CLAUDE_PLAN"])
    report_path = Path(plan["report"])
    report: dict[str, Any] = {
        "started_at_ns": time.time_ns(),
        "pid": os.getpid(),
        "ppid": os.getppid(),
        "argv": sys.argv[1:],
        "env": dict(os.environ),
        "cmdline": Path("/proc/self/cmdline").read_bytes().decode().split("\0")[:-1],
        "sigint_ignored_at_start": signal.getsignal(signal.SIGINT) == signal.SIG_IGN,
        "signals": [],
    }
    write_report(report_path, report)

    report["calls"] = [call_proxy(call) for call in plan.get("calls", [])]
    write_report(report_path, report)

    if plan.get("wait_for_signal"):
        terminating = wait_for_signals(
            report_path, report, {getattr(signal, name) for name in plan.get("ignore_signals", [])}
        )
        code = plan.get("exit_on_signal", 128 + terminating)
    else:
        code = plan.get("exit_code", 0)

    if marker := plan.get("stderr_marker"):
        sys.stderr.write(marker)
        sys.stderr.flush()
    if kill_with := plan.get("kill_self"):
        sig = getattr(signal, kill_with)
        if sig not in (signal.SIGKILL, signal.SIGSTOP):
            signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)
        time.sleep(10)
    return int(code)


if __name__ == "__main__":
    sys.exit(main())
