"""OpenTelemetry setup: ``configure()``, its config, exporter guards, our attribute names.

Exports resolve lazily so that ``otel_sse.telemetry.attrs`` can be imported by
the processors without pulling in the setup code that imports them back.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from otel_sse.telemetry.config import TelemetryConfig
    from otel_sse.telemetry.gateway_config import GatewayConfig
    from otel_sse.telemetry.setup import Instruments, Telemetry, configure, current, resolve

_EXPORTS = {
    "GatewayConfig": "otel_sse.telemetry.gateway_config",
    "TelemetryConfig": "otel_sse.telemetry.config",
    "Instruments": "otel_sse.telemetry.setup",
    "Telemetry": "otel_sse.telemetry.setup",
    "configure": "otel_sse.telemetry.setup",
    "current": "otel_sse.telemetry.setup",
    "resolve": "otel_sse.telemetry.setup",
}

__all__ = ["GatewayConfig", "Instruments", "Telemetry", "TelemetryConfig", "configure", "current",
           "resolve"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'otel_sse.telemetry' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
