"""The conversion's tables and forms: every record event and every task/agent
state survives attributes and back; GenAI messages round-trip; live-only data has
an OTLP form that converts to the same events; OTLP protobuf decodes into the
same records as the SDK path."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.common.v1.common_pb2 import (
    AnyValue,
    ArrayValue,
    InstrumentationScope,
    KeyValue,
    KeyValueList,
)
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs, SeverityNumber
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from otel_sse.convert import (
    LiveEvent,
    LogRecordData,
    SpanRecord,
    live_attributes,
    live_event_record,
    live_events,
    log_events,
    log_from_proto,
    log_to_proto,
    logs_from_proto,
    span_ended_events,
    span_events,
    span_from_proto,
    span_started_events,
    span_to_proto,
    spans_from_proto,
)
from otel_sse.convert import messages as msg
from otel_sse.convert import names as n
from otel_sse.convert.otlp import resource_to_proto
from otel_sse.convert.records import _CODECS, record_fields, record_payload
from otel_sse.convert.state import agent_attributes, agent_state, task_attributes, task_state
from tests.test_bridge_support import check_event
from tests.test_event_schemas import VALID

IDS = {"traceId", "spanId", "parentSpanId", "timestamp"}
TRACE, SPAN, PARENT = 0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331, 0x00F067AA0BA902B7


def _payload(event_type: str) -> dict[str, Any]:
    """The contract sample of ``event_type`` without ids and timestamp."""
    return {k: v for k, v in copy.deepcopy(VALID[event_type]).items() if k not in IDS}


def test_every_record_event_has_a_codec_and_an_event_name() -> None:
    assert set(_CODECS) == set(n.RECORD_EVENT_TYPES)
    assert {n.EVENT_TYPES[name] for name in n.EVENT_NAMES.values()} == set(n.RECORD_EVENT_TYPES)
    assert n.EVENT_NAMES["task:progress"] == "otel_sse.task.progress"
    assert n.EVENT_NAMES["agent:log:warn"] == "otel_sse.agent.log.warn"


@pytest.mark.parametrize("event_type", n.RECORD_EVENT_TYPES)
def test_record_events_round_trip_through_attributes(event_type: str) -> None:
    payload = _payload(event_type)
    event_name, attributes, body = record_fields(event_type, payload)
    assert event_name == n.EVENT_NAMES[event_type]
    for key, value in attributes.items():  # attribute values only: primitives and arrays
        assert isinstance(value, (str, bool, int, float, list)), (key, value)
        if isinstance(value, list):
            assert len({type(v) for v in value}) <= 1, (key, value)
    assert record_payload(event_type, attributes, body, "unused") == payload


@pytest.mark.parametrize("event_type", [t for t in VALID if t.startswith(("task:", "agent:"))
                                        and "progress" not in t and ":output" not in t
                                        and ":log" not in t and t != "task:intermediate"])
def test_entity_states_round_trip(event_type: str) -> None:
    state = _payload(event_type)
    if event_type.startswith("task:"):
        assert task_state(task_attributes(state)) == state
    else:
        assert agent_state(agent_attributes(state)) == state


def test_state_values_keep_their_types() -> None:
    state = {"taskId": "t", "status": "failed", "priority": 3, "result": "a string",
             "error": {"message": "boom", "code": 7}, "progress": 40,
             "metrics": {"tokenCount": 5, "costEstimate": 0.25}, "dependencies": ["a", "b"]}
    attributes = task_attributes(state)
    assert attributes[n.TASK_RESULT] == '"a string"'  # JSON text: a string stays a string
    assert attributes[n.TASK_PROGRESS] == 40
    assert attributes["otel_sse.task.metrics.cost_estimate"] == 0.25
    assert task_state(attributes) == state
    assert task_state({**attributes, n.TASK_RESULT: "not json"})["result"] == "not json"


def test_token_live_event_has_a_record_form_that_converts_to_the_same_event() -> None:
    data = {"requestId": "r", "provider": "p", "model": "m", "agentId": "a", "taskId": "t",
            "token": "Hel", "index": 3, "isFinal": False, "finishReason": None}
    data = {k: v for k, v in data.items() if v is not None}
    item = LiveEvent("llm:token", dict(data), TRACE, SPAN, PARENT, 1_700_000_000_123_456_789)
    record = live_event_record(item, service_name="svc")
    assert record.event_name == "otel_sse.llm.token" and record.trace_id == TRACE
    assert record.attributes[n.LLM_TOKEN_TEXT] == "Hel"
    assert log_events(record) == live_events(LiveEvent(
        "llm:token", dict(data), TRACE, SPAN, PARENT, 1_700_000_000_123_456_789))
    check_event(*log_events(record)[0])


def _span(attributes: dict[str, Any], *, ended: bool = False, live: Any = None,
          status: str = "unset", message: str | None = None) -> SpanRecord:
    return SpanRecord(trace_id=TRACE, span_id=SPAN, parent_span_id=PARENT, name="op",
                      kind="client", service_name="svc", attributes=attributes,
                      start_time_ns=1_700_000_000_000_000_000,
                      end_time_ns=1_700_000_001_500_000_000 if ended else None,
                      status=status, status_message=message, live=live)


def _seeds(events: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
    return [(t, d) for t, d in events if not t.startswith("span:")]


@pytest.mark.parametrize("live", [
    {"messages": [{"role": "system", "content": "be brief"},
                  {"role": "user", "content": "hi", "name": "ann"}],
     "systemPrompt": "sys", "tools": [{"name": "f", "parameters": {"type": "object"}}]},
    {"messages": [{"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "42"}]},
])
def test_live_request_fields_have_an_attribute_form(live: dict[str, Any]) -> None:
    base = {n.LLM_REQUEST_ID: "r", n.GEN_AI_OPERATION_NAME: "chat",
            n.GEN_AI_PROVIDER_NAME: "p", n.GEN_AI_REQUEST_MODEL: "m"}
    in_process = _seeds(span_started_events(_span(dict(base), live=live)))
    forwarded = _seeds(span_started_events(_span({**base, **live_attributes(live)})))
    assert forwarded == in_process
    assert in_process[0][1]["messages"] == live["messages"]


@pytest.mark.parametrize("attributes, live, event", [
    ({n.LLM_REQUEST_ID: "r", n.GEN_AI_OPERATION_NAME: "chat", n.LLM_DURATION_MS: 5},
     {"response": "done", "toolCalls": [{"toolCallId": "c", "toolName": "f",
                                          "arguments": "{}", "isComplete": True}]},
     "llm:request:completed"),
    ({n.LLM_REQUEST_ID: "r", n.GEN_AI_OPERATION_NAME: "execute_tool",
      n.GEN_AI_TOOL_NAME: "f", n.GEN_AI_TOOL_CALL_ID: "c"},
     {"result": {"rows": [1, 2]}}, "llm:tool:result"),
])
def test_live_outcome_fields_have_an_attribute_form(attributes: dict[str, Any],
                                                    live: dict[str, Any], event: str) -> None:
    in_process = _seeds(span_ended_events(_span(dict(attributes), ended=True, live=live)))
    forwarded = _seeds(span_ended_events(
        _span({**attributes, **live_attributes(live)}, ended=True)))
    assert forwarded == in_process and in_process[0][0] == event


@pytest.mark.parametrize("messages", [
    [{"role": "user", "content": "q"}],
    [{"role": "system", "content": "s"}, {"role": "user", "content": "q", "name": "bob"}],
    [{"role": "assistant", "content": "calling", "tool_calls": [
        {"id": "1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}],
    [{"role": "assistant", "content": None, "tool_calls": [
        {"id": "1", "type": "function", "function": {"name": "f", "arguments": "{\"x\":2}"}}]},
     {"role": "tool", "tool_call_id": "1", "content": "result"}],
    [{"role": "user", "content": [{"type": "text", "text": "a"},
                                  {"type": "image_url", "image_url": {"url": "u"}}]}],
])
def test_genai_messages_round_trip(messages: list[dict[str, Any]]) -> None:
    genai = msg.to_genai(messages)
    for message in genai:
        assert set(message) >= {"role", "parts"}
        assert all("type" in part for part in message["parts"])
    assert msg.from_genai(genai) == messages


def test_genai_shapes_follow_the_conventions() -> None:
    assert msg.to_genai([{"role": "user", "content": "hi"}]) == [
        {"role": "user", "parts": [{"type": "text", "content": "hi"}]}]
    generic = msg.to_genai([{"role": "user", "content": [{"type": "image_url", "x": 1}]}])
    assert generic[0]["parts"] == [{"type": "generic", "generic_type": "image_url", "x": 1}]
    output = msg.output_messages("done", [{"toolCallId": "c", "toolName": "f",
                                           "arguments": "{}", "isComplete": True}])
    assert "finish_reason" not in output[0]  # deprecated: gen_ai.response.finish_reasons
    assert output[0]["parts"][1] == {"type": "tool_call", "id": "c", "name": "f",
                                     "arguments": "{}", "isComplete": True}
    assert msg.output_text_and_calls(output) == ("done", [
        {"toolCallId": "c", "toolName": "f", "arguments": "{}", "isComplete": True}])
    assert msg.instructions_text(msg.system_instructions("sys")) == "sys"


# -- OTLP protobuf ---------------------------------------------------------------------------
def _kv(key: str, value: AnyValue) -> KeyValue:
    return KeyValue(key=key, value=value)


def _resource() -> Resource:
    return Resource(attributes=[_kv("service.name", AnyValue(string_value="remote"))])


def _proto_span(end: int, **extra: Any) -> Span:
    return Span(
        trace_id=TRACE.to_bytes(16, "big"), span_id=SPAN.to_bytes(8, "big"),
        parent_span_id=PARENT.to_bytes(8, "big"), name="chat m", kind=Span.SPAN_KIND_CLIENT,
        start_time_unix_nano=1_700_000_000_000_000_000, end_time_unix_nano=end,
        attributes=[
            _kv(n.GEN_AI_OPERATION_NAME, AnyValue(string_value="chat")),
            _kv(n.GEN_AI_PROVIDER_NAME, AnyValue(string_value="openai")),
            _kv(n.GEN_AI_REQUEST_MODEL, AnyValue(string_value="m")),
            _kv(n.GEN_AI_REQUEST_MAX_TOKENS, AnyValue(int_value=64)),
            _kv(n.GEN_AI_REQUEST_TEMPERATURE, AnyValue(double_value=0.5)),
            _kv(n.GEN_AI_REQUEST_STOP_SEQUENCES, AnyValue(array_value=ArrayValue(values=[
                AnyValue(string_value="\n")]))),
            _kv("blob", AnyValue(bytes_value=b"\x00\x01")),
            _kv("map", AnyValue(kvlist_value=KeyValueList(values=[
                _kv("k", AnyValue(bool_value=True))]))),
        ], **extra)


def test_span_from_proto_reads_ids_kind_status_attributes_and_resource() -> None:
    record = span_from_proto(_proto_span(
        1_700_000_002_000_000_000, status=Status(code=Status.STATUS_CODE_ERROR, message="x"),
        events=[Span.Event(name="exception", time_unix_nano=1_700_000_001_000_000_000,
                           attributes=[_kv("exception.type", AnyValue(string_value="E"))])]),
        _resource(), InstrumentationScope(name="lib"))
    assert (record.trace_id, record.span_id, record.parent_span_id) == (TRACE, SPAN, PARENT)
    assert record.kind == "client" and record.service_name == "remote"
    assert record.status == "error" and record.status_message == "x"
    assert record.attributes["gen_ai.request.stop_sequences"] == ["\n"]
    assert record.attributes["blob"] == "AAE=" and record.attributes["map"] == {"k": True}
    assert record.events[0]["attributes"] == {"exception.type": "E"}
    events = span_events(record)
    assert [t for t, _ in events] == ["llm:request:error", "span:ended"]
    for event_type, data in events:
        check_event(event_type, data)
    assert events[0][1]["error"] == "x" and events[0][1]["requestId"] == f"{SPAN:016x}"


def test_a_span_with_end_time_zero_is_a_start() -> None:
    """How a forwarder reports a span start over OTLP (see otel_sse.convert)."""
    (record,) = spans_from_proto([ResourceSpans(resource=_resource(), scope_spans=[
        ScopeSpans(spans=[_proto_span(0)])])])
    assert record.end_time_ns is None
    events = span_events(record)
    assert [t for t, _ in events] == ["llm:request:started", "span:started"]
    started = events[0][1]
    assert started["parameters"] == {"maxTokens": 64, "temperature": 0.5,
                                     "stopSequences": ["\n"]}
    assert started["parentSpanId"] == f"{PARENT:016x}"
    ended = span_from_proto(_proto_span(1_700_000_002_000_000_000), _resource())
    assert [t for t, _ in span_events(ended, with_start=True)] == [
        "llm:request:started", "span:started", "llm:request:completed", "span:ended"]


def test_log_from_proto_reads_our_record_events_and_foreign_logs() -> None:
    name, attributes, body = record_fields("agent:log:warn", {
        "agentId": "a", "level": "warn", "message": "careful", "context": {"n": 1}})
    ours = LogRecord(time_unix_nano=1_700_000_000_000_000_000, event_name=name,
                     body=AnyValue(string_value=body), severity_number=SeverityNumber.Value(
                         "SEVERITY_NUMBER_WARN"),
                     trace_id=TRACE.to_bytes(16, "big"), span_id=SPAN.to_bytes(8, "big"),
                     attributes=[_kv(k, AnyValue(string_value=v)) for k, v in attributes.items()])
    foreign = LogRecord(observed_time_unix_nano=1_700_000_000_000_000_000,
                        body=AnyValue(kvlist_value=KeyValueList(values=[
                            _kv("msg", AnyValue(string_value="slow"))])),
                        severity_text="WARN")
    records = list(logs_from_proto([ResourceLogs(resource=_resource(), scope_logs=[
        ScopeLogs(log_records=[ours, foreign])])]))
    (event_type, data), = log_events(records[0])
    assert event_type == "agent:log:warn"
    assert data["message"] == "careful" and data["context"] == {"n": 1}
    assert data["parentSpanId"] is None  # OTLP log records carry no parent
    check_event(event_type, data)
    (generic_type, generic), = log_events(records[1])
    assert generic_type == "log" and generic["body"] == {"msg": "slow"}
    assert "traceId" not in generic and generic["serviceName"] == "remote"
    assert log_from_proto(foreign).service_name == "unknown_service"


# -- records -> OTLP protobuf (what a forwarder sends) ------------------------------------------
_SCALARS = (st.text(max_size=20) | st.booleans()
            | st.integers(min_value=-(2**63), max_value=2**63 - 1)
            | st.floats(allow_nan=False))
# What the SDK's attributes hold (scalars, homogeneous lists) and what OTLP/JSON
# ingest may give (nested lists and maps).
_VALUES = st.recursive(_SCALARS, lambda inner: st.lists(inner, max_size=4)
                       | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)
_ATTRIBUTES = st.dictionaries(st.text(max_size=30), _VALUES, max_size=8)
_IDS = st.integers(min_value=1, max_value=2**64 - 1)
_TIMES = st.integers(min_value=1, max_value=2**63 - 1)


def _service_resource(name: str) -> Resource:
    return resource_to_proto({"service.name": name, "service.instance.id": "i-1"})


@settings(max_examples=200, deadline=None)
@given(trace_id=st.integers(min_value=1, max_value=2**128 - 1), span_id=_IDS,
       parent=st.none() | _IDS, name=st.text(max_size=30),
       kind=st.sampled_from(["internal", "server", "client", "producer", "consumer"]),
       attributes=_ATTRIBUTES, start=_TIMES, end=st.none() | _TIMES,
       status=st.sampled_from(["unset", "ok", "error"]),
       message=st.none() | st.text(min_size=1, max_size=20),
       events=st.lists(st.fixed_dictionaries({"name": st.text(max_size=10), "time_ns": _TIMES,
                                               "attributes": _ATTRIBUTES}), max_size=3))
def test_span_to_proto_and_back_is_the_same_record(
        trace_id: int, span_id: int, parent: int | None, name: str, kind: str,
        attributes: dict[str, Any], start: int, end: int | None, status: str,
        message: str | None, events: list[dict[str, Any]]) -> None:
    record = SpanRecord(trace_id=trace_id, span_id=span_id, parent_span_id=parent, name=name,
                        kind=kind, service_name="svc", attributes=attributes,
                        start_time_ns=start, end_time_ns=end)
    if end is not None:  # a start has no status or events (the package docstring)
        record.status, record.status_message, record.events = status, message, events
    message_ = span_to_proto(record)
    assert span_from_proto(message_, _service_resource("svc")) == record
    # What goes on the wire decodes to the same record too.
    assert span_from_proto(Span.FromString(message_.SerializeToString()),
                           _service_resource("svc")) == record


@settings(max_examples=200, deadline=None)
@given(trace_id=st.none() | st.integers(min_value=1, max_value=2**128 - 1),
       span_id=st.none() | _IDS, severity=st.none() | st.integers(min_value=1, max_value=24),
       text=st.none() | st.text(min_size=1, max_size=8),
       event_name=st.none() | st.text(min_size=1, max_size=30), body=_VALUES | st.none(),
       attributes=_ATTRIBUTES, time_ns=_TIMES)
def test_log_to_proto_and_back_is_the_same_record(
        trace_id: int | None, span_id: int | None, severity: int | None, text: str | None,
        event_name: str | None, body: Any, attributes: dict[str, Any], time_ns: int) -> None:
    record = LogRecordData(trace_id=trace_id, span_id=span_id, parent_span_id=None,
                           service_name="svc", severity_text=text, severity_number=severity,
                           event_name=event_name, body=body, attributes=attributes,
                           time_ns=time_ns)
    message = log_to_proto(record)
    assert log_from_proto(message, _service_resource("svc")) == record
    assert log_from_proto(LogRecord.FromString(message.SerializeToString()),
                          _service_resource("svc")) == record


def test_what_otlp_has_no_field_for_is_left_behind() -> None:
    """Values OTLP writes another way, and the fields a forwarder carries otherwise."""
    record = SpanRecord(trace_id=TRACE, span_id=SPAN, parent_span_id=None, name="s",
                        kind="internal", service_name="svc", start_time_ns=1,
                        attributes={"tuple": ("a", "b"), "big": 2**70, "bytes": b"\x00\x01",
                                    "empty": [], "none": None},
                        live={"messages": []})
    back = span_from_proto(span_to_proto(record), _service_resource("svc"))
    assert back.attributes == {"tuple": ["a", "b"], "big": str(2**70), "bytes": "AAE=",
                               "empty": [], "none": None}
    assert back.live is None  # a forwarder sends live fields as attributes first
    assert span_from_proto(span_to_proto(record)).service_name == "unknown_service"
    log = LogRecordData(trace_id=TRACE, span_id=SPAN, parent_span_id=PARENT,
                        service_name="svc", severity_text=None, severity_number=9,
                        event_name=None, body="line", attributes={}, time_ns=5)
    assert log_from_proto(log_to_proto(log), _service_resource("svc")).parent_span_id is None


def test_a_start_over_otlp_gives_the_events_of_the_in_process_start() -> None:
    record = SpanRecord(trace_id=TRACE, span_id=SPAN, parent_span_id=PARENT, name="chat m",
                        kind="client", service_name="svc", start_time_ns=1_700_000_000_000_000_000,
                        attributes={n.GEN_AI_OPERATION_NAME: "chat",
                                    n.GEN_AI_PROVIDER_NAME: "openai",
                                    n.GEN_AI_REQUEST_MODEL: "m"})
    message = span_to_proto(record)
    assert message.end_time_unix_nano == 0 and message.status.code == 0
    assert span_events(span_from_proto(message, _service_resource("svc"))) == \
        span_started_events(record)


def test_plain_records_are_what_the_conversion_reads() -> None:
    record = LogRecordData(trace_id=TRACE, span_id=SPAN, parent_span_id=PARENT,
                           service_name="svc", severity_text=None, severity_number=9,
                           event_name="otel_sse.task.progress", body=None,
                           attributes=task_attributes({"taskId": "t", "status": "running",
                                                       "progress": {"percentage": 50,
                                                                    "currentStep": "half",
                                                                    "timestamp": "x"}}),
                           time_ns=1_700_000_000_000_000_000)
    (event_type, data), = log_events(record)
    assert event_type == "task:progress"
    assert data["progress"] == {"taskId": "t", "percentage": 50, "currentStep": "half",
                                "timestamp": "x"}
