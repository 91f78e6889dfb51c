"""Instrumenting user code: decorators and a context manager on top of the emitters.

::

    import otel_sse

    @otel_sse.agent("researcher")
    async def research(question: str) -> str:
        return await answer(question)

    @otel_sse.task("answer")
    async def answer(question: str) -> str:
        with otel_sse.llm_request(provider="openai", model="gpt-4o-mini",
                                  messages=[{"role": "user", "content": question}]) as req:
            for chunk in req.wrap(client.chat.completions.create(..., stream=True)):
                ...
        return req.response

    @otel_sse.tool
    def search(query: str) -> list[str]: ...

Every call records through the emitters (:class:`~otel_sse.TaskStream`,
:class:`~otel_sse.AgentStream`, :class:`~otel_sse.LLMStream`): the events on the
stream and the spans exported are exactly theirs. Nesting follows the code
(context variables, see :mod:`otel_sse.instrumentation.context`); content
(arguments, yielded and returned values) is recorded only when content
capture is on (``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``,
``configure(capture_content=...)`` or ``capture_content=`` on a decorator).

:mod:`otel_sse.instrumentation.auto` (``otel_sse.instrument()``) and
:mod:`otel_sse.instrumentation.distro` (``opentelemetry-instrument``) set up
telemetry, the live stream and the installed instrumentations with no change
to the application's code.
"""

from otel_sse.instrumentation.api import agent, llm_request, task, tool
from otel_sse.instrumentation.context import current_frame
from otel_sse.instrumentation.llm import LLMRequest
from otel_sse.instrumentation.runtime import Instrumentation

__all__ = ["Instrumentation", "LLMRequest", "agent", "current_frame", "llm_request", "task",
           "tool"]
