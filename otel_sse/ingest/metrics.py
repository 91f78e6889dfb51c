"""OTLP metrics -> ``metric`` events: one per metric of a batch, with its points.

Metrics have no span to belong to, so they are not part of the span and log
conversion: a viewer gets each metric as exported (name, unit, kind, points).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric, ResourceMetrics

from otel_sse.wire.encoder import iso_us

# Points carried per event at most (a metric with more is cut, and says so).
MAX_POINTS = 100


def _attributes(pairs: Any) -> dict[str, Any]:
    from otel_sse.convert.otlp import attributes_of

    return attributes_of(pairs)


def _points(metric: Metric) -> tuple[str, list[dict[str, Any]], int]:
    kind = metric.WhichOneof("data") or "unknown"
    data = getattr(metric, kind, None)
    points = list(getattr(data, "data_points", ()))
    out = []
    for point in points[:MAX_POINTS]:
        item: dict[str, Any] = {"attributes": _attributes(point.attributes),
                                "time": iso_us(point.time_unix_nano) if point.time_unix_nano
                                else None}
        if kind in ("gauge", "sum"):
            item["value"] = point.as_double if point.WhichOneof("value") == "as_double" \
                else point.as_int
        else:
            item["count"] = point.count
            item["sum"] = point.sum
            if kind == "histogram":
                item["bucketCounts"] = list(point.bucket_counts)
                item["explicitBounds"] = list(point.explicit_bounds)
                if point.HasField("min"):
                    item["min"] = point.min
                if point.HasField("max"):
                    item["max"] = point.max
            elif kind == "summary":
                item["quantiles"] = {str(q.quantile): q.value for q in point.quantile_values}
        out.append(item)
    return kind, out, len(points)


def metric_events(resource_metrics: Iterable[ResourceMetrics], service: str
                  ) -> Iterator[tuple[str, dict[str, Any]]]:
    """One ``metric`` event per metric; ``service`` names the resource's service."""
    for group in resource_metrics:
        for scoped in group.scope_metrics:
            for metric in scoped.metrics:
                kind, points, total = _points(metric)
                latest = max((p["time"] for p in points if p["time"]), default=None)
                yield "metric", {
                    "serviceName": service, "scope": scoped.scope.name or None,
                    "name": metric.name, "description": metric.description or None,
                    "unit": metric.unit or None, "kind": kind, "points": points,
                    "truncated": total > len(points), "time": latest,
                }


def point_count(resource_metrics: Iterable[ResourceMetrics]) -> int:
    return sum(len(getattr(getattr(m, m.WhichOneof("data") or "", None), "data_points", ()))
               for group in resource_metrics for scoped in group.scope_metrics
               for m in scoped.metrics)


__all__ = ["MAX_POINTS", "metric_events", "point_count"]
