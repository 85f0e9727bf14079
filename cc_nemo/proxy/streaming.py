"""A streamed, translated answer: attempts of one model under the commit rule, unseen retries
while no content reached the client, then the model's fallbacks (docs/architecture.md,
"The commit rule")."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from typing import Any

from cc_nemo.proxy.bodies import BodyLog
from cc_nemo.proxy.calls import RetryBudget, UpstreamCalls
from cc_nemo.proxy.ids import new_message_id, new_tool_id
from cc_nemo.proxy.record import Exchange, Route
from cc_nemo.proxy.replies import parse_completion
from cc_nemo.proxy.stream_writer import StreamWriter
from cc_nemo.proxy.upstream import UpstreamReply, UpstreamTimeout
from cc_nemo.translate.errors import AnthropicError, ErrorReply, is_transient, timeout_error
from cc_nemo.translate.response import completion_events
from cc_nemo.translate.sse import SSEDecoder, SSELineTooLong
from cc_nemo.translate.stream import StreamTranslator

# The route that answers after a failure of the current one (a fallback), or None.
NextRoute = Callable[[AnthropicError], "Route | None"]


class TranslatedStream:
    """One streamed answer to one client request."""

    def __init__(
        self,
        calls: UpstreamCalls,
        writer: StreamWriter,
        exchange: Exchange,
        headers: Mapping[str, str],
    ) -> None:
        self._calls = calls
        self._writer = writer
        self._exchange = exchange
        self._headers = headers
        self._message_id = new_message_id()

    async def run(self, route: Route, next_route: NextRoute) -> None:
        """Answer with `route`, falling back while nothing reached the client; the last failure
        goes to the writer (a plain HTTP error before the commit)."""
        while True:
            error = await self._answer_with(route)
            if error is None:
                return
            following = None if self._writer.content_sent else next_route(error)
            if following is None:
                await self._writer.fail(error)
                return
            route = following

    async def _answer_with(self, route: Route) -> AnthropicError | None:
        """Stream one model's answer, retried unseen while no content reached the client.
        None when complete, else the failure to report."""
        budget = self._calls.budget()
        while True:
            translator = StreamTranslator(
                route.context, message_id=self._message_id, new_tool_id=new_tool_id
            )
            self._writer.set_opening(translator.start()[0])
            error = await self._attempt(route, translator, budget)
            if error is None:
                self._exchange.usage = translator.usage
                return None
            if self._writer.content_sent or not is_transient(error):
                return error
            if not await self._calls.back_off(self._exchange, budget, error):
                return error
            self._exchange.notes.append(f"retried unseen after: {error.message}")

    async def _attempt(
        self, route: Route, translator: StreamTranslator, budget: RetryBudget
    ) -> AnthropicError | None:
        opening = self._calls.open(
            self._exchange, route.body, self._headers, route.error_for, budget
        )
        reply: UpstreamReply | None = None
        try:
            try:
                reply = await self._writer.wait(opening)
            except ErrorReply as exc:
                return exc.error
            if reply.is_event_stream:
                return await self._pump(reply, translator)
            return await self._replay_json(reply, translator, route)
        finally:
            if reply is not None:
                reply.close()

    async def _replay_json(
        self, reply: UpstreamReply, translator: StreamTranslator, route: Route
    ) -> AnthropicError | None:
        """The upstream answered a stream request with one JSON body: replay it as events."""
        try:
            raw = await self._writer.wait(self._calls.read_reply(reply, self._exchange))
            self._exchange.mark_first_byte()
            completion = parse_completion(raw, route.context)
        except ErrorReply as exc:
            return exc.error
        return await self._send(translator, completion_events(translator, completion))

    async def _pump(
        self, reply: UpstreamReply, translator: StreamTranslator
    ) -> AnthropicError | None:
        decoder = SSEDecoder()
        logged = BodyLog(self._calls.settings.log_bodies)
        chunks = self._calls.chunks(reply, self._writer, self._exchange)
        try:
            async with contextlib.aclosing(chunks):
                async for data in chunks:
                    logged.add(data)
                    events: list[dict[str, Any]] = []
                    for message in decoder.feed(data):
                        events += translator.feed_data(message.data)
                        if translator.finished:
                            break
                    failure = await self._send(translator, events)
                    if translator.finished:
                        return failure
        except UpstreamTimeout as exc:
            return timeout_error(str(exc))
        except SSELineTooLong as exc:
            return AnthropicError(502, "api_error", f"the upstream stream is malformed: {exc}")
        finally:
            logged.write(self._exchange.request_id)
        events = []
        for message in decoder.flush():
            events += translator.feed_data(message.data)
        # At EOF without `[DONE]`: complete after a finish_reason, a truncation error otherwise.
        events += translator.finish(saw_done=False)
        return await self._send(translator, events)

    async def _send(
        self, translator: StreamTranslator, events: list[dict[str, Any]]
    ) -> AnthropicError | None:
        """Send what the translator made, but hold back its error event: the caller decides
        between an unseen retry, a fallback and telling the client."""
        if translator.error is None:
            await self._writer.send(events)
            return None
        await self._writer.send([event for event in events if event.get("type") != "error"])
        return translator.error
