"""otel-sse's OpenTelemetry distro and configurator, for ``opentelemetry-instrument``.

::

    OTEL_SSE_PORT=3000 OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4317 \\
        opentelemetry-instrument python app.py

``opentelemetry-instrument`` (``pip install 'otel-sse[auto]'``) finds them
through the entry points ``opentelemetry_distro`` and
``opentelemetry_configurator`` named ``otel_sse`` (pick them with
``OTEL_PYTHON_DISTRO=otel_sse`` and ``OTEL_PYTHON_CONFIGURATOR=otel_sse`` when
other distros are installed). It runs, before the application: the distro's
``configure()``, then the configurator's, which sets up telemetry and the live
stream (:func:`otel_sse.instrumentation.auto.setup`), then each installed
instrumentation through :meth:`OtelSSEDistro.load_instrumentor`.
"""

from __future__ import annotations

import logging
from typing import Any

# The module is typed "ignore" as a whole, which hides its names from mypy.
from opentelemetry.instrumentation.distro import BaseDistro  # type: ignore[attr-defined]
from opentelemetry.sdk._configuration import _BaseConfigurator
from opentelemetry.util._importlib_metadata import EntryPoint

from otel_sse.instrumentation.auto import (
    AutoConfig,
    Instrumented,
    distro_kwargs,
    existing,
    setup,
    setup_of,
)
from otel_sse.telemetry.gateway_config import GatewayConfig
from otel_sse.telemetry.setup import Telemetry, current

_log = logging.getLogger("otel_sse.instrumentation")


class OtelSSEDistro(BaseDistro):  # type: ignore[misc]
    """Loads each instrumentation onto otel-sse's telemetry.

    Its own ``configure()`` sets nothing: otel-sse's defaults live in
    ``configure()``, which the configurator runs.
    """

    def _configure(self, **kwargs: Any) -> None:
        """Nothing to set before the configurator runs."""

    def load_instrumentor(self, entry_point: EntryPoint, **kwargs: Any) -> None:
        """Instrument as the base distro does, giving the instrumentation the telemetry
        handle's providers when they are not the globals (``OTEL_SDK_DISABLED``), and
        loading none when nothing would receive what it records."""
        handle = current()
        if handle is not None and setup_of(handle) is not None:
            extra = distro_kwargs(handle)
            if extra is None:
                _log.debug("otel-sse: %s not instrumented: the SDK is disabled and nothing "
                           "streams live", entry_point.name)
                return
            kwargs = {**extra, **kwargs}
        super().load_instrumentor(entry_point, **kwargs)


class OtelSSEConfigurator(_BaseConfigurator):
    """Runs ``otel_sse.configure()`` and starts the live stream the environment asks for."""

    def _configure(self, **kwargs: Any) -> None:
        """``kwargs`` (``auto_instrumentation_version``) say nothing otel-sse needs."""
        setup(AutoConfig.from_env())


def instrument(service_name: str | None = None, *, port: int | None = None,
               gateway: str | GatewayConfig | None = None) -> Instrumented:
    """Set up the live stream, the OTLP export and the installed instrumentations.

    The same as running the application under ``opentelemetry-instrument`` with
    otel-sse's distro: ``configure()`` from the ``OTEL_*`` variables (after a
    ``configure()`` of the application's own, its handle is used), the live
    stream to a gateway (``gateway``, else ``OTEL_SSE_GATEWAY``) or from a
    server started here on a thread of its own (``port``, else
    ``OTEL_SSE_PORT``; 0 picks a free port), and every installed
    OpenTelemetry instrumentation but those ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS``
    names. Idempotent: later calls return what the first one set up.
    Shutting the handle down (at exit, or ``telemetry.shutdown()``) stops the
    server too, within the same deadline.
    """
    found = existing()
    if found is not None:
        return found
    done = setup(AutoConfig.from_env(port=port, gateway=gateway), service_name)
    enable_instrumentations(done.telemetry)
    return done


def enable_instrumentations(handle: Telemetry) -> None:
    """Load the installed instrumentations as ``opentelemetry-instrument`` does, through
    otel-sse's distro; a failing one is logged, never raised into the application."""
    try:
        from opentelemetry.instrumentation.auto_instrumentation._load import (
            _load_instrumentors,
        )
    except ImportError:
        # Every instrumentation depends on opentelemetry-instrumentation: none is installed.
        _log.info("otel-sse: no OpenTelemetry instrumentation is installed")
        return
    try:
        _load_instrumentors(OtelSSEDistro())  # type: ignore[no-untyped-call]
    except Exception:
        _log.warning("otel-sse: an instrumentation failed to load", exc_info=True)
