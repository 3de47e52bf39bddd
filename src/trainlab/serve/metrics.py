"""The server's Prometheus metrics (prometheus-client): requests, errors, latency, batch sizes, queue depth.

With several worker processes, prometheus-client's multiprocess mode (PROMETHEUS_MULTIPROC_DIR, set by
`trainlab serve --workers N`) adds up every worker's figures in /metrics.
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import multiprocess as prometheus_multiprocess

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)  # seconds
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)  # images
ROUTES = (  # the paths that get their own label; anything else is "other", so a scan cannot grow the label set
    "/",
    "/v1/predict",
    "/v1/health",
    "/v1/ready",
    "/v1/model",
    "/v1/samples",
    "/v2",
    "/v2/health/live",
    "/v2/health/ready",
    "/metrics",
    "/docs",
    "/openapi.json",
)
MULTIPROCESS_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


def route_label(path: str) -> str:
    """A request path as a metrics label: known routes by name, model paths by their template."""
    if path in ROUTES:
        return path
    if path.startswith("/v2/models/"):
        if path.endswith("/infer"):
            return "/v2/models/{name}/infer"
        return "/v2/models/{name}/ready" if path.endswith("/ready") else "/v2/models/{name}"
    if path.startswith("/static/"):
        return "/static"
    if path.startswith("/v1/model/reports/"):
        return "/v1/model/reports"
    if path.startswith("/v1/samples/"):
        return "/v1/samples/{index}.png"
    return "other"


class ServerMetrics:
    """The counters, histograms and gauge of one server process, in their own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "trainlab_requests", "HTTP requests answered", ("method", "route", "status"), registry=self.registry
        )
        self.errors = Counter(
            "trainlab_request_errors",
            "HTTP requests answered with an error status",
            ("status",),
            registry=self.registry,
        )
        self.latency = Histogram(
            "trainlab_request_duration_seconds",
            "Time from request to response",
            ("route",),
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "trainlab_batch_size", "Images per forward pass", buckets=BATCH_BUCKETS, registry=self.registry
        )
        self.images = Counter("trainlab_images", "Images classified", registry=self.registry)
        self.queue = Gauge(
            "trainlab_queue_jobs",
            "Requests waiting for the model",
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        # (method, route, status): its children of the metrics above; as few as the label sets (ROUTES bounds them)
        self.by_labels: dict[tuple[str, str, int], tuple[Any, Any, Any]] = {}

    def observe(self, method: str, path: str, status: int, seconds: float) -> None:
        route = route_label(path)
        counters = self.by_labels.get((method, route, status))
        if counters is None:  # labels() takes a lock and builds its key on every call: once per label set here
            counters = self.requests.labels(method, route, str(status)), self.latency.labels(route), None
            if status >= 400:
                counters = (*counters[:2], self.errors.labels(str(status)))
            self.by_labels[(method, route, status)] = counters
        requests, latency, errors = counters
        requests.inc()
        latency.observe(seconds)
        if errors is not None:
            errors.inc()

    def batch(self, images: int) -> None:
        self.batch_size.observe(images)
        self.images.inc(images)

    def exposition(self) -> bytes:
        """The text format for GET /metrics: this process's figures, or every worker's in multiprocess mode."""
        if os.environ.get(MULTIPROCESS_VARIABLE):
            registry = CollectorRegistry()
            prometheus_multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)
