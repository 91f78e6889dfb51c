"""Zero-code setup: the live stream and the OTLP export for an application left unchanged.

``otel_sse.instrument()`` (one call at the top of an application) and
``opentelemetry-instrument`` with otel-sse's distro and configurator
(:mod:`otel_sse.instrumentation.distro`) do the same thing through
:func:`setup`: ``configure()`` from the standard ``OTEL_*`` variables (the one
code path of every otel-sse process), the live stream where the environment
says (:class:`AutoConfig`), and every installed OpenTelemetry instrumentation,
loaded as ``opentelemetry-instrument`` loads them
(``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS`` honoured).

What was set up is kept on the telemetry handle (its component
:data:`COMPONENT`), so a second call, or ``instrument()`` inside a program
started by ``opentelemetry-instrument``, finds it and returns it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, NamedTuple

from otel_sse.env import Env
from otel_sse.errors import ServerError
from otel_sse.server.config import ServerConfig
from otel_sse.telemetry.gateway_config import GatewayConfig
from otel_sse.telemetry.setup import Telemetry, configure, current

if TYPE_CHECKING:
    from otel_sse.server.background import BackgroundServer
    from otel_sse.server.server import SSEServer

_log = logging.getLogger("otel_sse.instrumentation")
COMPONENT: Final = "otel_sse.auto"
PORT_VARIABLE: Final = "OTEL_SSE_PORT"
GATEWAY_VARIABLE: Final = "OTEL_SSE_GATEWAY"
# One setup at a time: two threads calling instrument() at once start one server.
_SETUP_LOCK: Final = threading.Lock()


@dataclass(frozen=True, slots=True)
class AutoConfig:
    """Where the zero-code setup streams live.

    ``gateway``: forward to an otel-sse gateway (``OTEL_SSE_GATEWAY`` and its
    token variables, see :class:`~otel_sse.telemetry.GatewayConfig`).
    ``server``: serve the stream from this process, on a thread of its own
    (``OTEL_SSE_PORT`` and the other ``OTEL_SSE_*`` server variables, see
    :class:`~otel_sse.server.ServerConfig`). A gateway wins over a port: the
    shell that runs ``otel-sse serve`` with ``OTEL_SSE_PORT`` may start the
    application too. Neither: export only.
    """

    server: ServerConfig | None = None
    gateway: GatewayConfig | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, port: int | None = None,
                 gateway: str | GatewayConfig | None = None) -> AutoConfig:
        """The arguments, else the variables of ``env`` (default ``os.environ``);
        a bad value raises :class:`~otel_sse.errors.ConfigError` naming it."""
        source = Env(env)
        chosen = GatewayConfig.from_env(source, gateway)
        if chosen is not None:
            return cls(gateway=chosen)
        if port is None and source.get(PORT_VARIABLE) is None:
            return cls()
        return cls(server=ServerConfig.build(environ=env, port=port))


class Instrumented(NamedTuple):
    """What :func:`otel_sse.instrument` returns: the telemetry handle, and the server
    it started in this process (None when the stream goes to a gateway or nowhere)."""

    telemetry: Telemetry
    server: SSEServer | None


@dataclass(frozen=True, slots=True)
class _Setup:
    """What :func:`setup` did, kept on the handle."""

    config: AutoConfig
    background: BackgroundServer | None

    @property
    def server(self) -> SSEServer | None:
        return self.background.server if self.background is not None else None


def setup(config: AutoConfig, service_name: str | None = None) -> Instrumented:
    """``configure()`` and the live stream of ``config``, once per telemetry handle;
    what the configurator of ``opentelemetry-instrument`` runs."""
    with _SETUP_LOCK:
        found = existing()
        if found is not None:
            return found
        background = _start_server(config.server) if config.server is not None else None
        try:
            handle = _handle(config, service_name, background)
        except BaseException:
            if background is not None:
                background.stop()
            raise
        if background is not None:
            handle.own("server", background.stop)
        done = handle.shared(COMPONENT, lambda: _Setup(config, background))
        _announce(config, background)
        return Instrumented(handle, done.server)


def setup_of(handle: Telemetry | None) -> _Setup | None:
    """What :func:`setup` did on ``handle`` (None when it did not run there)."""
    found = handle.component(COMPONENT) if handle is not None and handle.alive else None
    return found if isinstance(found, _Setup) else None


def existing() -> Instrumented | None:
    """What an earlier ``instrument()`` or configurator set up, if anything."""
    handle = current()
    done = setup_of(handle)
    return Instrumented(handle, done.server) if handle is not None and done is not None else None


def _handle(config: AutoConfig, service_name: str | None,
            background: BackgroundServer | None) -> Telemetry:
    """A new ``configure()``, or the application's own handle with the stream added."""
    server = background.server if background is not None else None
    handle = current()
    if handle is None:
        return configure(service_name, server=server, gateway=config.gateway)
    if server is not None:
        handle.attach_server(server)
    if config.gateway is not None:
        handle.attach_gateway(config.gateway)  # once per handle: one it has stays
    return handle


def _start_server(config: ServerConfig) -> BackgroundServer | None:
    from otel_sse.server.background import BackgroundServer

    background = BackgroundServer(config)
    try:
        background.start()
    except ServerError as exc:
        # A taken port must not stop the application: it runs, and exports.
        _log.warning("otel-sse: no live stream: %s", exc)
        return None
    return background


def _announce(config: AutoConfig, background: BackgroundServer | None) -> None:
    if background is not None:
        _log.info("otel-sse: live stream at %s/events, dashboard at %s/dashboard",
                  background.url, background.url)
    elif config.gateway is not None:
        _log.info("otel-sse: streaming live to the gateway at %s", config.gateway.url)
    elif config.server is None:
        _log.warning("otel-sse: no live stream: set %s (a server in this process) or %s "
                     "(an otel-sse gateway); exporting only", PORT_VARIABLE, GATEWAY_VARIABLE)


def distro_kwargs(handle: Telemetry) -> dict[str, object] | None:
    """What the distro passes to each instrumentation's ``instrument()``; None: load none.

    With the SDK disabled (``OTEL_SDK_DISABLED``) the global providers are
    no-ops and the handle's are private ones that only stream live: the
    instrumentations are given those, or not loaded at all when nothing
    streams. Otherwise they use the globals, which are the handle's.
    """
    from opentelemetry import trace

    if trace.get_tracer_provider() is handle.tracer_provider:
        return {}
    if not handle.bridges and handle.gateway is None:
        return None
    return {"tracer_provider": handle.tracer_provider, "logger_provider": handle.logger_provider,
            "meter_provider": handle.meter_provider}
