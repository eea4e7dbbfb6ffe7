"""Prometheus metrics of the storefront API (prometheus-client): requests, latency, the served release.

With several uvicorn worker processes each keeps its own values; ``python -m core serve`` then gives them
a shared folder (``Settings.metrics_dir``, the library's ``PROMETHEUS_MULTIPROC_DIR``) and ``/metrics``
adds them up (``MultiProcessCollector``), so a scrape sees the whole server whichever worker answers it.
"""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)

from core.config import settings

disable_created_metrics()  # no *_created series: a scrape shows what happened, not when a label first did
# latency buckets (seconds) around the 50 ms target and the 100 ms limit
BUCKETS = (0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0)


class ServeMetrics:
    """The API's metrics in a registry of their own (so tests can build several apps in one process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "hs_requests", "Requests answered, by route template, method and status",
            ["route", "method", "status"], registry=r,
        )  # fmt: skip
        self.latency = Histogram(
            "hs_request_seconds", "Time to answer a request, by route template",
            ["route"], buckets=BUCKETS, registry=r,
        )  # fmt: skip
        self.release = Gauge(
            "hs_release_id", "The release id served now", registry=r, multiprocess_mode="mostrecent"
        )
        self.switches = Counter("hs_release_switches", "Times the served release changed", registry=r)
        self.load_seconds = Gauge(
            "hs_release_load_seconds", "Seconds the served release took to load",
            registry=r, multiprocess_mode="mostrecent",
        )  # fmt: skip
        self.load_errors = Counter("hs_release_load_errors", "Releases that could not be loaded", registry=r)
        self.cache = Counter(
            "hs_answer_cache", "GET answers looked up in the answer cache, by result", ["result"], registry=r
        )

    def cache_lookup(self, hit: bool) -> None:
        self.cache.labels("hit" if hit else "miss").inc()

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route).observe(seconds)

    def served(self, release_id: int, load_seconds: float, switched: bool) -> None:
        self.release.set(release_id)
        self.load_seconds.set(load_seconds)
        if switched:
            self.switches.inc()

    def text(self) -> tuple[bytes, str]:
        """(the exposition text, its content type): every worker's values when they share a folder."""
        if settings().metrics_dir:
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry, path=settings().metrics_dir)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
