"""One signal's OTLP exporter settings, resolved as the OpenTelemetry specification says.

For every option the order is: the argument given to :func:`otel_sse.configure`,
the per-signal variable (``OTEL_EXPORTER_OTLP_TRACES_TIMEOUT``), the generic one
(``OTEL_EXPORTER_OTLP_TIMEOUT``), the default. Endpoints follow the
specification's URL rules: for OTLP/HTTP a per-signal endpoint is used as it is
(``/`` when it has no path) and the generic one is a base to which
``v1/<signal>`` is appended; an endpoint given to ``configure()`` is such a base
too. gRPC endpoints are targets and never get a path. For gRPC an ``http`` or
``https`` scheme decides whether TLS is used; ``insecure`` only matters for an
endpoint without a scheme.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final, Literal, TypeVar, cast
from urllib.parse import urlsplit, urlunsplit

import otel_sse.env as envtypes
from otel_sse.env import Env
from otel_sse.errors import ConfigError

Signal = Literal["traces", "logs", "metrics"]
Protocol = Literal["grpc", "http/protobuf"]
Compression = Literal["none", "gzip", "deflate"]

_T = TypeVar("_T")

SIGNALS: Final[tuple[Signal, ...]] = ("traces", "logs", "metrics")
PROTOCOLS: Final[tuple[Protocol, ...]] = ("grpc", "http/protobuf")
COMPRESSIONS: Final[tuple[Compression, ...]] = ("none", "gzip", "deflate")
# gRPC stays the default protocol: it was otel-sse's default before the
# specification's SHOULD for http/protobuf, and its users point at port 4317.
DEFAULT_PROTOCOL: Final[Protocol] = "grpc"
DEFAULT_TIMEOUT: Final = 10.0
_DEFAULT_ENDPOINTS: Final[Mapping[Protocol, str]] = {
    "grpc": "http://localhost:4317", "http/protobuf": "http://localhost:4318/"}


@dataclass(frozen=True, slots=True)
class OtlpArgs:
    """The OTLP options given to ``configure()``; None falls back to the environment."""

    endpoint: str | None = None
    protocol: str | None = None
    headers: Mapping[str, str] | None = None
    timeout: float | None = None
    insecure: bool | None = None
    compression: str | None = None
    certificate: str | None = None
    client_key: str | None = None
    client_certificate: str | None = None


@dataclass(frozen=True, slots=True)
class OtlpSettings:
    """Where and how one signal goes over OTLP. ``timeout`` is seconds per export."""

    signal: Signal
    protocol: Protocol = DEFAULT_PROTOCOL
    # OTLP/HTTP: the URL requests are posted to. gRPC: the target, scheme kept.
    endpoint: str = _DEFAULT_ENDPOINTS[DEFAULT_PROTOCOL]
    # Whether any endpoint was configured for this signal (argument, per-signal
    # or generic variable): without one, the signal is not exported by default.
    endpoint_configured: bool = False
    headers: tuple[tuple[str, str], ...] = ()
    timeout: float = DEFAULT_TIMEOUT
    compression: Compression = "none"
    insecure: bool = True  # gRPC without TLS
    certificate: str | None = None
    client_key: str | None = None
    client_certificate: str | None = None

    @classmethod
    def resolve(cls, signal: Signal, env: Env, args: OtlpArgs) -> OtlpSettings:
        """Apply the specification's precedence for ``signal``; bad values raise ConfigError."""
        reader = _SignalEnv(env, signal)
        protocol = cast(Protocol, reader.option(
            "PROTOCOL", "otlp_protocol", args.protocol,
            lambda raw, src: envtypes.choice(raw, src, PROTOCOLS)) or DEFAULT_PROTOCOL)

        endpoint, configured = _endpoint(reader, signal, protocol, args.endpoint)
        scheme = urlsplit(endpoint).scheme if "://" in endpoint else ""
        insecure_setting = reader.option("INSECURE", "otlp_insecure", args.insecure,
                                         envtypes.spec_bool)
        insecure = scheme == "http" if scheme else bool(insecure_setting)

        headers = dict(reader.option("HEADERS", "otlp_headers", None, envtypes.pairs) or [])
        if args.headers:
            headers.update({str(k): str(v) for k, v in args.headers.items()})

        if args.timeout is not None:
            timeout = envtypes.positive_seconds(args.timeout, "otlp_timeout")
        else:
            timeout = reader.option("TIMEOUT", "otlp_timeout", None,
                                    envtypes.timeout_millis) or DEFAULT_TIMEOUT
        compression = cast(Compression, reader.option(
            "COMPRESSION", "otlp_compression", args.compression,
            lambda raw, src: envtypes.choice(raw, src, COMPRESSIONS)) or "none")

        certificate = reader.option("CERTIFICATE", "otlp_certificate", args.certificate, _file)
        client_key = reader.option("CLIENT_KEY", "otlp_client_key", args.client_key, _file)
        client_cert = reader.option("CLIENT_CERTIFICATE", "otlp_client_certificate",
                                    args.client_certificate, _file)
        if (client_key is None) != (client_cert is None):
            present, value, missing = (("CLIENT_KEY", client_key, "CLIENT_CERTIFICATE")
                                       if client_key else
                                       ("CLIENT_CERTIFICATE", client_cert, "CLIENT_KEY"))
            raise ConfigError(
                f"{reader.source_of(present)}={value!r} needs a client "
                f"{missing.lower().removeprefix('client_')} too "
                f"({' or '.join(reader.names(missing))})")
        return cls(signal=signal, protocol=protocol, endpoint=endpoint,
                   endpoint_configured=configured, headers=tuple(sorted(headers.items())),
                   timeout=timeout, compression=compression, insecure=insecure,
                   certificate=certificate, client_key=client_key,
                   client_certificate=client_cert)


class _SignalEnv:
    """Reads ``OTEL_EXPORTER_OTLP_<SIGNAL>_<OPTION>`` before ``OTEL_EXPORTER_OTLP_<OPTION>``."""

    def __init__(self, env: Env, signal: Signal) -> None:
        self.env = env
        self.prefix = f"OTEL_EXPORTER_OTLP_{signal.upper()}_"
        self._sources: dict[str, str] = {}

    def names(self, option: str) -> tuple[str, str]:
        return f"{self.prefix}{option}", f"OTEL_EXPORTER_OTLP_{option}"

    def source_of(self, option: str) -> str:
        return self._sources.get(option, self.names(option)[1])

    def option(self, option: str, arg_name: str, arg: object,
               parse: Callable[[str, str], _T]) -> _T | None:
        """The argument when given (strings parsed as the variable would be), else the
        per-signal variable, else the generic one, else None."""
        if arg is not None:
            self._sources[option] = arg_name
            return parse(arg, arg_name) if isinstance(arg, str) else cast(_T, arg)
        found = self.env.first(self.names(option))
        if found is None:
            return None
        self._sources[option] = found[0]
        return parse(found[1], found[0])


def _endpoint(reader: _SignalEnv, signal: Signal, protocol: Protocol,
              arg: str | None) -> tuple[str, bool]:
    """The URL (HTTP) or target (gRPC) for ``signal``, and whether one was configured."""
    per_signal_name, generic_name = reader.names("ENDPOINT")
    per_signal = reader.env.get(per_signal_name)
    if arg is not None:
        raw, source, as_base = arg.strip(), "otlp_endpoint", True
    elif per_signal is not None:
        raw, source, as_base = per_signal, per_signal_name, False
    else:
        generic = reader.env.get(generic_name)
        if generic is None:
            default = _DEFAULT_ENDPOINTS[protocol]
            return (_join(default, signal) if protocol == "http/protobuf" else default), False
        raw, source, as_base = generic, generic_name, True
    check_endpoint(raw, protocol, source)
    if protocol == "grpc":
        return raw, True
    if as_base:
        return _join(raw, signal), True
    parts = urlsplit(raw)
    return (raw if parts.path else urlunsplit(parts._replace(path="/"))), True


def _join(base: str, signal: Signal) -> str:
    """The spec's relative URL: the base with a trailing slash, then ``v1/<signal>``."""
    return f"{base if base.endswith('/') else base + '/'}v1/{signal}"


def check_endpoint(endpoint: str, protocol: Protocol, source: str) -> None:
    """An http(s) URL with a host (OTLP/HTTP), or that or ``host:port`` (gRPC)."""
    parts = urlsplit(endpoint if "://" in endpoint else f"//{endpoint}")
    if "://" in endpoint and parts.scheme not in ("http", "https"):
        raise ConfigError(f"{source}={endpoint!r}: the scheme must be http or https")
    if protocol == "http/protobuf" and "://" not in endpoint:
        raise ConfigError(f"{source}={endpoint!r}: OTLP/HTTP needs a URL such as http://host:4318")
    try:
        parts.port  # noqa: B018 - parsing the port is the check
    except ValueError:
        raise ConfigError(f"{source}={endpoint!r}: bad port") from None
    if not parts.hostname:
        raise ConfigError(f"{source}={endpoint!r} names no host")


def _file(raw: str, source: str) -> str:
    if not os.path.isfile(raw):
        raise ConfigError(f"{source}={raw!r} is not a file")
    return raw
