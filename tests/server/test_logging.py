"""Logging goes to the log file only, one line per request, with every secret redacted."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import anthropic
import pytest

from cc_nemo.proxy.logs import (
    LOGGER_NAME,
    REDACTED,
    SecretRedactor,
    close_logging,
    configure_logging,
    secret_values,
)
from tests.fake_upstream import CAPACITY_ERROR, Reply, completion, text_stream
from tests.fixtures import CLOUDFLARE_TOKEN, GATEWAY_TOKEN, SESSION_TOKEN, MakeProxy

SECRETS = (SESSION_TOKEN, GATEWAY_TOKEN, CLOUDFLARE_TOKEN)
LINE = re.compile(
    r"(req_\w{24}) POST /v1/messages session=\S+ model=(\S+) upstream=(\S+) status=(\d+) "
    r"stream=(yes|no) in=(\d+) out=(\d+) cached=(\d+) ttft_ms=(\d+|-) duration_ms=(\d+) "
    r"attempts=(\d+) error=(\S+)"
)


async def test_one_log_line_per_request_with_id_model_status_tokens_and_timing(
    make_proxy: MakeProxy, tmp_path: Path
) -> None:
    log_file = tmp_path / "logs" / "proxy.log"
    proxy = await make_proxy(log_file=log_file)
    proxy.fake.enqueue(
        Reply.stream(text_stream("streamed", prompt_tokens=33)),
        Reply.json(completion("plain", prompt_tokens=44, completion_tokens=2)),
        *[Reply.error(429, CAPACITY_ERROR)] * 3,
    )
    request_ids = []
    async with proxy.client() as client:
        async with client.messages.stream(
            model="claude-sonnet-5", max_tokens=10, messages=[{"role": "user", "content": "a"}]
        ) as stream:
            await stream.get_final_message()
        request_ids.append(stream.response.headers["request-id"])
        raw = await client.messages.with_raw_response.create(
            model="claude-haiku-4-5", max_tokens=10, messages=[{"role": "user", "content": "b"}]
        )
        request_ids.append(raw.headers["request-id"])
        with pytest.raises(anthropic.OverloadedError) as raised:
            await client.messages.create(
                model="claude-sonnet-5", max_tokens=10, messages=[{"role": "user", "content": "c"}]
            )
        request_ids.append(raised.value.response.headers["request-id"])
    await proxy.running.stop()

    lines = [LINE.search(line) for line in log_file.read_text().splitlines()]
    found = [match.groups() for match in lines if match]
    assert [groups[0] for groups in found] == request_ids
    streamed, plain, failed = found
    assert streamed[1:9] == (
        "claude-sonnet-5",
        "workers-ai/@cf/nvidia/nemotron-3-120b-a12b",
        "200",
        "yes",
        "33",
        streamed[6],
        "0",
        streamed[8],
    )
    assert streamed[8] != "-"
    assert plain[1:8] == (
        "claude-haiku-4-5",
        "workers-ai/@cf/openai/gpt-oss-20b",
        "200",
        "no",
        "44",
        "2",
        "0",
    )
    assert failed[3] == "529" and failed[10] == "3" and failed[11] == "overloaded_error"
    assert log_file.stat().st_mode & 0o077 == 0


async def test_bodies_are_logged_only_when_asked_and_always_redacted(
    make_proxy: MakeProxy, tmp_path: Path
) -> None:
    quiet_log, verbose_log = tmp_path / "quiet.log", tmp_path / "verbose.log"
    prompt = f"please remember {SESSION_TOKEN} and {GATEWAY_TOKEN} and {CLOUDFLARE_TOKEN}"
    for log_file, log_bodies in ((quiet_log, False), (verbose_log, True)):
        proxy = await make_proxy(log_file=log_file, log_bodies=log_bodies)
        proxy.fake.enqueue(Reply.stream(text_stream(f"echoing {SESSION_TOKEN}")))
        async with (
            proxy.client() as client,
            client.messages.stream(
                model="claude-sonnet-5",
                max_tokens=10,
                messages=[{"role": "user", "content": prompt}],
            ) as stream,
        ):
            await stream.get_final_message()
        await proxy.running.stop()
    quiet, verbose = quiet_log.read_text(), verbose_log.read_text()
    assert "please remember" not in quiet
    assert "please remember" in verbose and "echoing" in verbose
    assert verbose.count(REDACTED) >= 6
    for secret in SECRETS:
        assert secret not in quiet
        assert secret not in verbose


async def test_nothing_reaches_the_terminal(
    make_proxy: MakeProxy, capfd: pytest.CaptureFixture[str]
) -> None:
    proxy = await make_proxy(log_file=None, ping_interval=0.1, max_retries=0)
    proxy.fake.enqueue(
        Reply.stream(text_stream("cut short", pieces=4), drop_after=1),
        Reply.error(500, "<html>oops</html>"),
        Reply.error(500, "<html>oops</html>"),
        Reply.error(500, "<html>oops</html>"),
    )
    async with proxy.client() as client:
        with pytest.raises(anthropic.APIStatusError):
            async with client.messages.stream(
                model="claude-sonnet-5", max_tokens=10, messages=[{"role": "user", "content": "a"}]
            ) as stream:
                await stream.get_final_message()
        with pytest.raises(anthropic.InternalServerError):
            await client.messages.create(
                model="claude-sonnet-5", max_tokens=10, messages=[{"role": "user", "content": "b"}]
            )
    await proxy.running.stop()
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("token=s3cr3t-value!", f"token={REDACTED}!"),
        ("Bearer gw-abc and gw-abc", f"{REDACTED} and {REDACTED}"),
        ("nothing secret", "nothing secret"),
    ],
)
def test_redactor_replaces_every_occurrence(text: str, expected: str) -> None:
    redactor = SecretRedactor(["s3cr3t-value", "gw-abc", "Bearer gw-abc", ""])
    assert redactor.redact(text) == expected


def test_secret_values_include_credentials_without_their_scheme() -> None:
    values = secret_values(
        "session", {"Authorization": "Bearer cf-token", "cf-aig-authorization": "Bearer gw-token"}
    )
    assert set(values) == {"session", "Bearer cf-token", "cf-token", "Bearer gw-token", "gw-token"}


def test_tracebacks_in_the_log_are_redacted_too(tmp_path: Path) -> None:
    log_file = tmp_path / "trace.log"
    handler = configure_logging(log_file, secrets=["hunter2-secret"])
    try:
        try:
            raise RuntimeError("failed with hunter2-secret inside")
        except RuntimeError:
            logging.getLogger(f"{LOGGER_NAME}.test").exception("boom %s", "hunter2-secret")
    finally:
        close_logging(handler)
    text = log_file.read_text()
    assert "hunter2-secret" not in text
    assert "RuntimeError" in text and text.count(REDACTED) >= 2


def test_no_log_file_means_no_output_anywhere(capfd: pytest.CaptureFixture[str]) -> None:
    handler = configure_logging(None, secrets=[])
    try:
        logging.getLogger(f"{LOGGER_NAME}.test").error("should vanish")
        logging.getLogger("asyncio").error("library noise")
    finally:
        close_logging(handler)
    assert capfd.readouterr() == ("", "")
    assert logging.getLogger(LOGGER_NAME).propagate is True


async def test_logging_set_up_by_the_launcher_is_left_in_place(
    make_proxy: MakeProxy, tmp_path: Path
) -> None:
    session_log, proxy_log = tmp_path / "session.log", tmp_path / "proxy.log"
    handler = configure_logging(session_log, secrets=SECRETS)
    try:
        proxy = await make_proxy(log_file=proxy_log)
        proxy.fake.enqueue(Reply.json(completion("hi")))
        async with proxy.client() as client:
            await client.messages.create(
                model="claude-sonnet-5", max_tokens=10, messages=[{"role": "user", "content": "a"}]
            )
        await proxy.running.stop()
        assert handler in logging.getLogger(LOGGER_NAME).handlers
    finally:
        close_logging(handler)
    assert LINE.search(session_log.read_text())
    assert not proxy_log.exists()
