"""A plain OpenTelemetry application: the stock SDK and OTLP exporters, no otel-sse.

The gateway turns what it exports into live events: ``span:*``, ``log``, and for
its GenAI-convention span ``llm:request:started``/``llm:request:completed``.
Everything is configured by the standard OpenTelemetry environment variables::

    otel-sse serve --port 3000                     # the gateway (OTLP/gRPC on 4319)
    OTEL_SERVICE_NAME=plain-app \\
    OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:3000 \\
    OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf \\
        python examples/otlp_app.py

``OTEL_EXPORTER_OTLP_PROTOCOL=grpc`` with ``OTEL_EXPORTER_OTLP_ENDPOINT=
http://127.0.0.1:4319`` sends over gRPC instead; behind a token, add
``OTEL_EXPORTER_OTLP_HEADERS=authorization=Bearer%20<producer token>``. A collector
in between works the same way (see ``collectors/``). It prints the trace id as
JSON: ``{"traceId": "..."}``.
"""

from __future__ import annotations

import json
import os

from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, LogRecordExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.trace import SpanKind


def exporters() -> tuple[SpanExporter, LogRecordExporter]:
    """The OTLP exporters the protocol variable names; both read the endpoint and
    headers from the environment themselves."""
    if os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf") == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        return OTLPSpanExporter(), OTLPLogExporter()
    from opentelemetry.exporter.otlp.proto.http._log_exporter import (
        OTLPLogExporter as HTTPLogExporter,
    )
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter as HTTPSpanExporter,
    )
    return HTTPSpanExporter(), HTTPLogExporter()


def main() -> None:
    spans, logs = exporters()
    resource = Resource.create()  # service.name from OTEL_SERVICE_NAME
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(BatchSpanProcessor(spans))
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(BatchLogRecordProcessor(logs))
    tracer = tracer_provider.get_tracer("plain-app")
    with tracer.start_as_current_span("answer question", kind=SpanKind.SERVER) as root:
        # What a GenAI instrumentation records for one model call.
        with tracer.start_as_current_span("chat gpt-4o", kind=SpanKind.CLIENT) as chat:
            chat.set_attributes({"gen_ai.operation.name": "chat",
                                 "gen_ai.provider.name": "openai",
                                 "gen_ai.request.model": "gpt-4o",
                                 "gen_ai.usage.input_tokens": 10,
                                 "gen_ai.usage.output_tokens": 20})
        logger_provider.get_logger("plain-app").emit(body="answered", severity_text="INFO")
    trace_id = format(root.get_span_context().trace_id, "032x")
    tracer_provider.shutdown()  # flushes the batches
    logger_provider.shutdown()
    print(json.dumps({"traceId": trace_id}), flush=True)


if __name__ == "__main__":
    main()
