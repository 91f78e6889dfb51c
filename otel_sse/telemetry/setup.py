"""``configure()``: providers, OTLP exporters and SSE processors in one call.

Where telemetry goes when nobody calls ``configure()``: an emitter then uses
the application's SDK providers if it installed some globally (our processors
are added to them once per server), and otherwise a private SDK tracer and
logger provider wired to the emitter's server with no exporter. Either way
every event carries real trace and span ids.

That process-wide state (the handle ``configure()`` made last, the handle on the
application's providers, the private handles per server) lives on one
:class:`TelemetryRegistry`; ``configure()``, ``current()`` and ``resolve()`` use
the process's registry.
"""

from __future__ import annotations

import atexit
import logging
import threading
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, TypeVar, cast

from opentelemetry import _logs, metrics, trace
from opentelemetry._logs import Logger
from opentelemetry.metrics import MeterProvider, NoOpMeterProvider
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk.metrics import MeterProvider as SDKMeterProvider
from opentelemetry.sdk.metrics.export import MetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Tracer

import otel_sse.telemetry.attrs as attrs
from otel_sse._version import __version__
from otel_sse.env import positive_seconds
from otel_sse.processors.bridge import SSEBridge, SSELogRecordProcessor, SSESpanProcessor
from otel_sse.telemetry.config import TelemetryConfig
from otel_sse.telemetry.deadline import Clock, Deadline, Job, run_in_thread, wait_all
from otel_sse.telemetry.export import build_pipelines
from otel_sse.telemetry.gateway_config import GatewayConfig
from otel_sse.telemetry.guard import ExportCounts, ExportGuard, ExportHealth, describe_losses
from otel_sse.telemetry.instruments import Instruments as Instruments  # re-exported

if TYPE_CHECKING:
    from otel_sse.telemetry.gateway import GatewayForwarder

_log = logging.getLogger("otel_sse.telemetry")
_VERSION = __version__
_Provider = TypeVar("_Provider", TracerProvider, LoggerProvider, SDKMeterProvider)
_T = TypeVar("_T")


class Telemetry:
    """What ``configure()`` returns: the providers in use and our processors on them.

    Its lifecycle has deadlines: :meth:`force_flush` and :meth:`shutdown` return
    within the time they are given whatever the exporters do; asyncio code
    awaits :meth:`aforce_flush` and :meth:`ashutdown` instead, which leave the
    event loop free meanwhile.
    """

    def __init__(
        self,
        config: TelemetryConfig,
        tracer_provider: TracerProvider,
        logger_provider: LoggerProvider,
        meter_provider: MeterProvider,
        *,
        owns_tracer_provider: bool,
        owns_logger_provider: bool,
        owned_meter_provider: SDKMeterProvider | None,
        health: Mapping[str, ExportHealth] | None = None,
        guards: Sequence[ExportGuard] = (),
        on_shutdown: Callable[[Telemetry], None] | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.config = config
        self.tracer_provider = tracer_provider
        self.logger_provider = logger_provider
        self.meter_provider = meter_provider
        self.health = dict(health or {})
        self._owns_tracer = owns_tracer_provider
        self._owns_logger = owns_logger_provider
        self._owned_meter = owned_meter_provider
        self._guards = tuple(guards)
        self._on_shutdown = on_shutdown
        self._clock = clock
        self.tracer: Tracer = tracer_provider.get_tracer(attrs.INSTRUMENTATION_NAME, _VERSION)
        self.logger: Logger = logger_provider.get_logger(attrs.INSTRUMENTATION_NAME, _VERSION)
        self.instruments = Instruments(
            meter_provider.get_meter(attrs.INSTRUMENTATION_NAME, _VERSION))
        # server id -> (server, bridge); the providers keep the bridge's processors.
        self._bridges: dict[int, tuple[Any, SSEBridge]] = {}
        # The forwarder to a gateway in another process (configure(gateway=...)).
        self.gateway: GatewayForwarder | None = None
        # provider name -> the flush running for it, which a later flush joins
        # rather than piling a second one onto the same export lock.
        self._flushes: dict[str, Job] = {}
        # Components built on this handle (the decorators' emitters), by key.
        self._shared: dict[str, object] = {}
        # What the handle stops after its telemetry at shutdown (an embedded server).
        self._owned: list[tuple[str, Callable[[float], object]]] = []
        self._lock = threading.Lock()
        self.alive = True

    # -- servers ----------------------------------------------------------------
    def attach_server(self, server: Any) -> SSEBridge:
        """Stream this handle's telemetry to ``server`` (idempotent per server)."""
        with self._lock:
            found = self._bridges.get(id(server))
            if found is not None and found[0] is server:
                return found[1]
            bridge = SSEBridge(server, self.config.live_queue_size)
            self.tracer_provider.add_span_processor(SSESpanProcessor(bridge))
            self.logger_provider.add_log_record_processor(SSELogRecordProcessor(bridge))
            self._bridges[id(server)] = (server, bridge)
            return bridge

    def bridge_for(self, server: Any) -> SSEBridge | None:
        """The bridge streaming to ``server`` (None when not attached)."""
        found = self._bridges.get(id(server))
        return found[1] if found is not None and found[0] is server else None

    @property
    def bridges(self) -> list[SSEBridge]:
        """Every bridge of this handle, one per attached server."""
        return [entry[1] for entry in self._bridges.values()]

    # -- a gateway ------------------------------------------------------------------
    def attach_gateway(self, config: GatewayConfig) -> GatewayForwarder:
        """Forward this handle's spans, log records and live events to the gateway of
        ``config`` (once per handle: a second call returns the forwarder there is)."""
        from otel_sse.telemetry.gateway import GatewayForwarder

        with self._lock:
            if self.gateway is not None:
                return self.gateway
            resource = getattr(self.tracer_provider, "resource", None)
            attributes = dict(getattr(resource, "attributes", None) or {})
            forwarder = GatewayForwarder(config, attributes)
            self.tracer_provider.add_span_processor(forwarder.span_processor)
            self.logger_provider.add_log_record_processor(forwarder.log_processor)
            self.gateway = forwarder
            return forwarder

    def shared(self, key: str, build: Callable[[], _T]) -> _T:
        """The component ``key`` of this handle, built by ``build()`` the first time.

        What is built on top of telemetry (the decorators' emitters) keeps its
        state on the handle this way: a new ``configure()`` starts afresh, and no
        module holds it. Two threads asking at once may both build; one result is
        kept and returned to both.
        """
        found = self._shared.get(key)
        if found is None:
            built = build()  # outside the lock: building may attach servers
            with self._lock:
                found = self._shared.setdefault(key, built)
        return cast(_T, found)

    def component(self, key: str) -> object | None:
        """The component ``key`` that :meth:`shared` built on this handle (None when none was)."""
        return self._shared.get(key)

    def own(self, name: str, stop: Callable[[float], object]) -> None:
        """Stop something this handle's telemetry streams to when the handle shuts down.

        ``stop`` is called with the seconds left before the shutdown deadline,
        after the live stream was flushed, beside the exporters' shutdown: the
        server ``otel_sse.instrument()`` started is stopped so, at exit too.
        """
        with self._lock:
            self._owned.append((name, stop))

    # -- lifecycle ----------------------------------------------------------------
    def _deadline(self, seconds: float, name: str) -> Deadline:
        seconds = positive_seconds(seconds, name)
        return Deadline(seconds) if self._clock is None else Deadline(seconds, self._clock)

    def force_flush(self, timeout: float = 10.0) -> bool:
        """Export and stream everything recorded so far, within ``timeout`` seconds in all.

        The live stream is flushed first, then the tracer, logger and meter
        providers and the gateway forwarder side by side. True when all of it
        finished in time; a flush still exporting at the deadline goes on in the
        background (nothing is dropped for it), and the result is False.
        """
        deadline = self._deadline(timeout, "timeout")
        ok = True
        for bridge in self.bridges:  # on the sink's loop this drains in place
            ok = bridge.flush(deadline.remaining()) and ok
        flushes: list[tuple[str, Callable[[int], object]]] = [
            ("traces", self.tracer_provider.force_flush),
            ("logs", self.logger_provider.force_flush)]
        if self._owned_meter is not None:
            flushes.append(("metrics", self._owned_meter.force_flush))
        jobs = [self._flush_job(name, flush, deadline) for name, flush in flushes]
        gateway = self.gateway
        if gateway is not None:
            jobs.append(Job("flush-gateway", lambda: gateway.flush(deadline.remaining())))
        return wait_all(jobs, deadline) and all(job.ok for job in jobs) and ok

    def _flush_job(self, name: str, flush: Callable[[int], object], deadline: Deadline) -> Job:
        with self._lock:
            running = self._flushes.get(name)
        if running is not None and not running.wait(deadline.remaining()):
            return running
        job = Job(f"flush-{name}", lambda: flush(int(deadline.remaining() * 1000)))
        with self._lock:
            self._flushes[name] = job
        return job

    # ``timeout`` is the flush's own budget, as in the sync method, not a cancellation.
    async def aforce_flush(self, timeout: float = 10.0) -> bool:  # noqa: ASYNC109
        """:meth:`force_flush` for asyncio code: ``await telemetry.aforce_flush()``
        waits on another thread, so the event loop (and the live stream it
        serves) keeps running meanwhile."""
        return await run_in_thread("flush", lambda: self.force_flush(timeout))

    def shutdown(self, timeout: float | None = None) -> bool:
        """Flush and stop what this handle owns, within one deadline; idempotent.

        ``timeout`` (seconds) defaults to ``config.shutdown_timeout``
        (``configure(shutdown_timeout=...)``, ``OTEL_SSE_SHUTDOWN_TIMEOUT``, 5 s).
        The live stream is flushed, then the providers this handle owns shut
        down side by side, exporting what they hold, and the gateway forwarder
        sends what it holds (a gateway that is away gets one more attempt).
        Shortly before the deadline whatever is still exporting is given up:
        the exporters are shut down, which interrupts their retries and the
        requests in flight, and what was left is counted, not exported; one
        warning line says what was lost. What the handle owns (:meth:`own`: the
        server ``instrument()`` started) is stopped after the live stream was
        flushed, within the same deadline. The atexit hook registered by
        ``configure()`` is this method. Returns True when everything was
        exported. From a coroutine, await :meth:`ashutdown` instead: this call
        blocks its thread until done.
        """
        deadline = self._deadline(
            self.config.shutdown_timeout if timeout is None else timeout, "timeout")
        with self._lock:
            if not self.alive:
                return True
            self.alive = False
        atexit.unregister(self.shutdown)
        try:
            return self._shutdown(deadline)
        finally:
            if self._on_shutdown is not None:
                self._on_shutdown(self)

    def _shutdown(self, deadline: Deadline) -> bool:
        before = {guard: guard.counts() for guard in self._guards}
        for bridge in self.bridges:
            bridge.flush(deadline.remaining())
            bridge.close()
        gateway = self.gateway
        if gateway is not None:
            # Beside the exporters (the forwarder has every ended span already), and
            # on this deadline, not the one of its processors' shutdown.
            gateway.start_close(deadline.remaining())
        jobs = self._stop_jobs(deadline)
        if gateway is not None:
            jobs.append(Job("gateway", lambda: gateway.close(deadline.remaining())))
        jobs += [Job(name, _on_deadline(stop, deadline)) for name, stop in self._owned]
        # Give up a little before the deadline: the exporters then need a moment
        # to stop, and the counts below are final only once they have.
        finished = wait_all(jobs, deadline, reserve=min(0.25, deadline.seconds / 10))
        gave_up = not finished
        if gave_up:
            for guard in self._guards:
                guard.abandon()
            finished = wait_all(jobs, deadline)
        losses = {guard: guard.counts() - before[guard] for guard in self._guards}
        blocked = [job.name for job in jobs if not job.done]
        message = describe_losses(losses, deadline.seconds if gave_up else None, blocked)
        if message:
            _log.warning("%s", message)
        return finished and all(job.ok for job in jobs if job.name == "gateway") and not any(
            _lost(counts) for counts in losses.values())

    def _stop_jobs(self, deadline: Deadline) -> list[Job]:
        """Shut down the providers this handle owns, each on a thread of its own."""
        jobs = []
        if self._owns_tracer:
            jobs.append(Job("traces", self.tracer_provider.shutdown))
        if self._owns_logger:
            jobs.append(Job("logs", self.logger_provider.shutdown))
        meter = self._owned_meter
        if meter is not None:
            jobs.append(Job("metrics",
                            lambda: meter.shutdown(timeout_millis=deadline.remaining() * 1000)))
        return jobs

    async def ashutdown(self, timeout: float | None = None) -> bool:  # noqa: ASYNC109
        """:meth:`shutdown` for asyncio code: ``await telemetry.ashutdown()``.

        The shutdown runs on another thread, within the same deadline, and the
        event loop keeps running meanwhile: the live stream drains on it and
        the application's other tasks go on. Calling :meth:`shutdown` from a
        coroutine instead would block the loop until the deadline.
        """
        return await run_in_thread("shutdown", lambda: self.shutdown(timeout))

    def __enter__(self) -> Telemetry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    async def __aenter__(self) -> Telemetry:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.ashutdown()


def _on_deadline(stop: Callable[[float], object], deadline: Deadline) -> Callable[[], object]:
    return lambda: stop(deadline.remaining())


def _lost(counts: ExportCounts) -> int:
    return counts.failed + counts.given_up


def _resource(cfg: TelemetryConfig) -> Resource:
    """The config's resource attributes, with ``service.name`` when one is set."""
    resource_attrs: dict[str, Any] = dict(cfg.resource)
    if cfg.service_name:
        resource_attrs["service.name"] = cfg.service_name
    return Resource.create(resource_attrs)


def _live(provider: _Provider) -> _Provider:
    """``provider``, recording whatever ``OTEL_SDK_DISABLED`` says in ``os.environ``.

    The SDK providers read that variable when built and then hand out no-op
    tracers, loggers and meters. Ours serve the live stream, which the variable
    does not switch off; whether they export was decided by the config, which
    read it (or the ``env`` given to ``configure()``).
    """
    if getattr(provider, "_disabled", False):
        provider._disabled = False
    return provider


class TelemetryRegistry:
    """The process-wide telemetry state behind ``configure()``, ``current()`` and ``resolve()``.

    It holds the handle the last ``configure()`` made, the handle on the
    application's own global providers, and the private handles made for
    servers when neither exists.
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._default: Telemetry | None = None
        self._global_attached: Telemetry | None = None
        self._private: weakref.WeakKeyDictionary[Any, Telemetry] = weakref.WeakKeyDictionary()
        self._private_by_id: dict[int, tuple[Any, Telemetry]] = {}

    def configure(self, cfg: TelemetryConfig, server: Any = None,
                  metric_readers: Sequence[MetricReader] = ()) -> Telemetry:
        """Build a handle for ``cfg`` (see :func:`configure`) and make it the current one."""
        handle = _build(cfg, metric_readers, self._forget)
        if server is not None:
            handle.attach_server(server)
        with self._lock:
            self._default = handle
        atexit.register(handle.shutdown)
        return handle

    def current(self) -> Telemetry | None:
        """The handle of the last ``configure()`` that is not shut down."""
        return self._default

    def resolve(self, server: Any, telemetry: Telemetry | None = None) -> Telemetry:
        """The handle an emitter created now should use (see the module docstring)."""
        handle = telemetry or self._default
        if handle is None or not handle.alive:
            with self._lock:
                handle = self._fallback(server)
        if server is not None:
            handle.attach_server(server)
        return handle

    def _fallback(self, server: Any) -> Telemetry:
        cfg = TelemetryConfig.from_env(set_global=False)
        tp, lp = trace.get_tracer_provider(), _logs.get_logger_provider()
        # With the SDK disabled the application's SDK providers hand out no-op
        # tracers; the live stream then runs on private providers.
        if isinstance(tp, TracerProvider) and isinstance(lp, LoggerProvider) and (
                not cfg.sdk_disabled):
            if self._global_attached is None or self._global_attached.tracer_provider is not tp:
                self._global_attached = self._with_gateway(Telemetry(
                    cfg, tp, lp, metrics.get_meter_provider(), owns_tracer_provider=False,
                    owns_logger_provider=False, owned_meter_provider=None))
            return self._global_attached
        return self._private_handle(server, cfg)

    def _private_handle(self, server: Any, cfg: TelemetryConfig) -> Telemetry:
        try:
            found = self._private.get(server)
        except TypeError:  # an unhashable or non-weakref-able sink
            entry = self._private_by_id.get(id(server))
            found = entry[1] if entry is not None and entry[0] is server else None
        if found is not None:
            return found
        resource = _resource(cfg)
        handle = Telemetry(
            cfg, _live(TracerProvider(resource=resource, shutdown_on_exit=False)),
            _live(LoggerProvider(resource=resource, shutdown_on_exit=False)),
            NoOpMeterProvider() if cfg.sdk_disabled else metrics.get_meter_provider(),
            owns_tracer_provider=True, owns_logger_provider=True, owned_meter_provider=None)
        self._with_gateway(handle)
        try:
            self._private[server] = handle
        except TypeError:
            self._private_by_id[id(server)] = (server, handle)
        return handle

    @staticmethod
    def _with_gateway(handle: Telemetry) -> Telemetry:
        """``OTEL_SSE_GATEWAY`` without ``configure()``: the handle forwards too, and
        sends what it holds when the process exits."""
        if handle.config.gateway is not None:
            handle.attach_gateway(handle.config.gateway)
            atexit.register(handle.shutdown)
        return handle

    def _forget(self, handle: Telemetry) -> None:
        with self._lock:
            if self._default is handle:
                self._default = None


def _build(cfg: TelemetryConfig, metric_readers: Sequence[MetricReader],
           on_shutdown: Callable[[Telemetry], None]) -> Telemetry:
    """Providers, exporters and processors for ``cfg``, as :func:`configure` describes."""
    resource = _resource(cfg)
    pipes = build_pipelines(cfg)
    use_global = cfg.set_global and not cfg.sdk_disabled

    existing_tp = trace.get_tracer_provider() if use_global else None
    if isinstance(existing_tp, TracerProvider):
        tracer_provider, owns_tp = existing_tp, False
    else:
        tracer_provider = _live(TracerProvider(resource=resource, shutdown_on_exit=False))
        owns_tp = True
        for span_processor in pipes.span_processors:
            tracer_provider.add_span_processor(span_processor)
        if use_global:
            trace.set_tracer_provider(tracer_provider)

    existing_lp = _logs.get_logger_provider() if use_global else None
    if isinstance(existing_lp, LoggerProvider):
        logger_provider, owns_lp = existing_lp, False
    else:
        logger_provider = _live(LoggerProvider(resource=resource, shutdown_on_exit=False))
        owns_lp = True
        for log_processor in pipes.log_processors:
            logger_provider.add_log_record_processor(log_processor)
        if use_global:
            _logs.set_logger_provider(logger_provider)

    existing_mp = metrics.get_meter_provider() if use_global else None
    owned_meter: SDKMeterProvider | None = None
    meter_provider: MeterProvider
    if cfg.sdk_disabled:
        meter_provider = NoOpMeterProvider()
    elif isinstance(existing_mp, SDKMeterProvider):
        meter_provider = existing_mp
    else:
        owned_meter = _live(SDKMeterProvider(
            resource=resource, metric_readers=[*metric_readers, *pipes.metric_readers],
            shutdown_on_exit=False))
        meter_provider = owned_meter
        if use_global:
            metrics.set_meter_provider(owned_meter)

    handle = Telemetry(cfg, tracer_provider, logger_provider, meter_provider,
                       owns_tracer_provider=owns_tp, owns_logger_provider=owns_lp,
                       owned_meter_provider=owned_meter, health=pipes.health,
                       guards=pipes.guards, on_shutdown=on_shutdown)
    if cfg.gateway is not None:
        handle.attach_gateway(cfg.gateway)
    return handle


_REGISTRY: Final = TelemetryRegistry()


def configure(
    service_name: str | None = None,
    server: Any = None,
    otlp_endpoint: str | None = None,
    otlp_protocol: str | None = None,
    *,
    resource_attributes: Mapping[str, str] | None = None,
    otlp_headers: Mapping[str, str] | None = None,
    otlp_timeout: float | None = None,
    otlp_insecure: bool | None = None,
    otlp_compression: str | None = None,
    otlp_certificate: str | None = None,
    otlp_client_key: str | None = None,
    otlp_client_certificate: str | None = None,
    traces_exporter: str | Sequence[str] | None = None,
    logs_exporter: str | Sequence[str] | None = None,
    metrics_exporter: str | Sequence[str] | None = None,
    metric_export_interval: float | None = None,
    export_schedule_delay: float | None = None,
    export_max_queue_size: int | None = None,
    export_max_batch_size: int | None = None,
    capture_content: bool | str | None = None,
    export_tokens: bool | None = None,
    set_global: bool = True,
    live_queue_size: int | None = None,
    shutdown_timeout: float | None = None,
    sdk_disabled: bool | None = None,
    metric_readers: list[MetricReader] | None = None,
    env: Mapping[str, str] | None = None,
    gateway: str | GatewayConfig | None = None,
    token: str | None = None,
) -> Telemetry:
    """Set up tracing, logs and metrics with OTLP export and the live SSE stream.

    Arguments left as None fall back to the standard ``OTEL_*`` environment
    variables, which follow the OpenTelemetry specification: per-signal
    ``OTEL_EXPORTER_OTLP_TRACES_*`` / ``_LOGS_*`` / ``_METRICS_*`` variables win
    over the generic ``OTEL_EXPORTER_OTLP_*`` ones, and arguments win over both
    (``otlp_endpoint`` is a base URL for OTLP/HTTP, like
    ``OTEL_EXPORTER_OTLP_ENDPOINT``; ``otlp_headers`` are added to the headers
    from the environment). ``traces_exporter`` and its siblings (or
    ``OTEL_TRACES_EXPORTER=otlp,console``) name one or more exporters per
    signal, or ``none``; without them a signal is exported over OTLP when an
    endpoint is configured for it and not at all otherwise.

    With ``set_global`` (the default) the providers become the OpenTelemetry
    globals; when the application already installed SDK providers globally,
    ours are not created: the SSE processors are added to the application's
    providers instead, and its own exporters stay in charge.

    ``OTEL_SDK_DISABLED=true`` (or ``sdk_disabled=True``) disables the SDK as the
    specification says: nothing is exported (exporter arguments included), no
    provider is installed globally, the application's providers are left
    alone and the metric instruments are no-ops. The live SSE stream is
    otel-sse's own feature and keeps working: spans and log records still
    reach ``server`` through private providers, with real ids.

    ``gateway`` (``OTEL_SSE_GATEWAY``), the URL of a gateway (``otel-sse serve``)
    in another process, streams this process's telemetry live through it: span
    starts, tokens, progress and output lines reach its subscribers while they
    happen, over OTLP/HTTP, beside the normal export (see
    :mod:`otel_sse.telemetry.gateway`; a :class:`GatewayConfig` sets more).
    ``token`` is the gateway's producer token (else ``OTEL_SSE_GATEWAY_TOKEN``,
    ``OTEL_SSE_PRODUCER_TOKEN``, ``OTEL_SSE_TOKEN``); it is never logged.
    ``telemetry.gateway.stats()`` counts what was sent and lost.

    ``shutdown_timeout`` (seconds, ``OTEL_SSE_SHUTDOWN_TIMEOUT``, default 5) bounds
    :meth:`Telemetry.shutdown` and the atexit hook registered here. Emitters
    created afterwards use the returned handle.
    """
    cfg = TelemetryConfig.from_env(
        env,
        service_name=service_name, resource_attributes=resource_attributes,
        otlp_endpoint=otlp_endpoint, otlp_protocol=otlp_protocol, otlp_headers=otlp_headers,
        otlp_timeout=otlp_timeout, otlp_insecure=otlp_insecure,
        otlp_compression=otlp_compression, otlp_certificate=otlp_certificate,
        otlp_client_key=otlp_client_key, otlp_client_certificate=otlp_client_certificate,
        traces_exporter=traces_exporter, logs_exporter=logs_exporter,
        metrics_exporter=metrics_exporter, metric_export_interval=metric_export_interval,
        export_schedule_delay=export_schedule_delay, export_max_queue_size=export_max_queue_size,
        export_max_batch_size=export_max_batch_size, capture_content=capture_content,
        export_tokens=export_tokens, set_global=set_global, live_queue_size=live_queue_size,
        shutdown_timeout=shutdown_timeout, sdk_disabled=sdk_disabled,
        gateway=gateway, gateway_token=token,
    )
    return _REGISTRY.configure(cfg, server, metric_readers or ())


def current() -> Telemetry | None:
    """The handle of the last ``configure()`` that is not shut down."""
    return _REGISTRY.current()


def resolve(server: Any, telemetry: Telemetry | None = None) -> Telemetry:
    """The handle an emitter created now should use (see the module docstring)."""
    return _REGISTRY.resolve(server, telemetry)
