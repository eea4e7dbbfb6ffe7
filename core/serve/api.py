"""The storefront API (FastAPI), thin: parameters in, ``core.serve.storefront`` answers out.

``create_app(live=None)`` builds the app; ``python -m core serve`` runs it under uvicorn (``core.serve.cli``).
Each request reads the served release once (``LiveRelease.current``) and answers from it, with its id in
the body and in the ``X-Release-Id`` header. The handlers are ``async`` and compute inline: the work is CPU
bound, so one request at a time per worker process (as many processes as cores) keeps every core busy
without threads contending for the GIL, and requests are answered in arrival order. Answers are returned as
the storefront builds them (the response models document them, a test holds them to it), and a GET answer
is kept per (release, request) in ``core.serve.answers`` (a reload is not ranked again).

Errors: an unknown item 404, a bad parameter or event 422, nothing published yet 503, each as
``{"error": ..., "message": ...}``. With ``HS_API_KEY`` set, ``/v1/*`` and ``/metrics`` need the header
``X-API-Key`` (compared in constant time). CORS is off unless ``HS_CORS_ORIGINS`` names origins.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Body, Depends, FastAPI, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader

from core.config import settings
from core.errors import InputError, NotFoundError
from core.ranking.limits import DEFAULT_K, SLOT_MAX
from core.serve import schemas, storefront
from core.serve.answers import AnswerCache, encode, json_answer
from core.serve.context import ServedRelease
from core.serve.live import LiveRelease, NoLiveRelease
from core.serve.metrics import ServeMetrics
from core.serve.visit import VisitEvent

log = logging.getLogger(__name__)
UserId = Annotated[str, PathParam(min_length=1, max_length=128, pattern=schemas.ID_PATTERN)]
ItemId = Annotated[str, PathParam(min_length=1, max_length=128, pattern=schemas.ID_PATTERN)]
K = Annotated[int, Query(ge=1, le=SLOT_MAX, description=f"slots of the list (1–{SLOT_MAX})")]
RowK = Annotated[int, Query(ge=0, le=SLOT_MAX, description="slots of each other row (0: only For you)")]
Device = Annotated[
    str | None,
    Query(max_length=32, pattern=r"^[A-Za-z0-9_.-]+$", description="this visit's device (e.g. mobile)"),
]
ShopperQuery = Annotated[
    str | None, Query(min_length=1, max_length=128, pattern=schemas.ID_PATTERN, description="the shopper")
]
ERRORS = {
    401: {"model": schemas.ErrorOut, "description": "missing or wrong X-API-Key (when one is configured)"},
    422: {"model": schemas.ErrorOut, "description": "a bad parameter or event"},
    503: {"model": schemas.ErrorOut, "description": "no release is live yet"},
}
api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="when HS_API_KEY is set")


class Unauthorized(Exception):
    pass


def require_key(key: Annotated[str | None, Depends(api_key_header)] = None) -> None:
    expected = settings().api_key
    if expected and not hmac.compare_digest((key or "").encode(), expected.encode()):
        raise Unauthorized()


def _error(status: int, error: str, message: str, **extra) -> JSONResponse:
    return JSONResponse({"error": error, "message": message, **extra}, status_code=status)


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for e in exc.errors()[:5]:
        where = ".".join(str(x) for x in e.get("loc", ()) if x != "body") or "request"
        parts.append(f"{where}: {e.get('msg', 'invalid')}")
    return "; ".join(parts)


def _install_errors(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError):
        detail = jsonable_encoder(exc.errors(), custom_encoder={Exception: str})
        return _error(422, "invalid_request", _validation_message(exc), detail=detail)

    @app.exception_handler(InputError)
    async def bad_input(_: Request, exc: InputError):
        return _error(422, "invalid_request", str(exc))

    @app.exception_handler(NotFoundError)
    async def not_found(_: Request, exc: NotFoundError):
        return _error(404, "not_found", str(exc))

    @app.exception_handler(NoLiveRelease)
    async def no_release(_: Request, exc: NoLiveRelease):
        return _error(503, "no_release", str(exc))

    @app.exception_handler(Unauthorized)
    async def unauthorized(_: Request, exc: Unauthorized):
        return _error(401, "unauthorized", "this API needs the header X-API-Key with the configured key")

    @app.exception_handler(Exception)
    async def internal(_: Request, exc: Exception):
        log.exception("request failed")
        return _error(500, "internal", "internal error; the server log has the details")


class MetricsMiddleware:
    """Counts every request and times it, labelled by its route template (not the raw path)."""

    def __init__(self, app, metrics: ServeMetrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0, status = time.perf_counter(), 500

        async def send_status(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.observe(route, scope["method"], status, time.perf_counter() - t0)


def _v1(live: LiveRelease, answers: AnswerCache) -> APIRouter:
    """The /v1 endpoints. Each returns the storefront's JSON-ready dict (built in the response model's
    shape) as it is: FastAPI does not validate a returned Response against ``response_model`` (which stays
    for the schema), so a homepage's ~60 slots are not re-validated through pydantic on every request.
    GET answers go through ``answers`` (the same request to the same release: the same bytes)."""
    v1 = APIRouter(prefix="/v1", dependencies=[Depends(require_key)], responses=ERRORS)

    def answer(body: dict) -> Response:
        return json_answer(encode(body), body["release_id"])

    def kept(key: tuple, compute: Callable[[ServedRelease], dict]) -> Response:
        release = live.current()  # read once: the key and the answer name the same release
        return answers.answer(release.release_id, key, lambda: compute(release))

    @v1.get("/homepage/{user_id}", response_model=schemas.HomepageOut, summary="A shopper's homepage")
    async def get_homepage(user_id: UserId, k: K = DEFAULT_K, device: Device = None,
                           row_k: RowK = storefront.ROW_K):  # fmt: skip
        key = ("homepage", user_id, k, device, row_k)
        return kept(key, lambda r: storefront.homepage(r, user_id, k, device, None, row_k))

    @v1.post(
        "/homepage/{user_id}",
        response_model=schemas.HomepageOut,
        summary="A shopper's homepage with this visit's events (not yet in the snapshot) taken into account",
    )
    async def post_homepage(user_id: UserId, visit: Annotated[schemas.VisitIn, Body()],
                            k: K = DEFAULT_K, device: Device = None, row_k: RowK = storefront.ROW_K):  # fmt: skip
        now = datetime.now(UTC)
        events = [VisitEvent(e.item_id, e.event_type, e.ts or now) for e in visit.events]
        return answer(storefront.homepage(live.current(), user_id, k, device, events, row_k))

    @v1.get(
        "/similar/{item_id}",
        response_model=schemas.SimilarOut,
        summary="Items similar to one (a product page)",
        responses={404: {"model": schemas.ErrorOut, "description": "an item the release does not know"}},
    )
    async def get_similar(item_id: ItemId, k: K = storefront.ROW_K, user_id: ShopperQuery = None):
        return kept(("similar", item_id, k, user_id), lambda r: storefront.similar(r, item_id, k, user_id))

    @v1.get("/search", response_model=schemas.SearchOut, summary="Title search, re-ranked for the shopper")
    async def get_search(
        q: Annotated[str, Query(min_length=1, max_length=200, pattern=r"\S", description="words of a title")],
        user_id: ShopperQuery = None,
        k: K = storefront.ROW_K,
    ):
        return kept(("search", q, user_id, k), lambda r: storefront.search(r, q, user_id, k))

    @v1.get("/release", response_model=schemas.ReleaseOut, summary="The release served now")
    async def get_release():
        return answer(storefront.release_info(live.current(), live.upcoming))

    return v1


def create_app(live: LiveRelease | None = None, watch: bool = True) -> FastAPI:
    """The API over ``live`` (default: the settings' releases folder, loaded at startup and watched)."""
    metrics = ServeMetrics()
    live = live or LiveRelease(settings().releases_dir, poll_s=settings().serve_poll_s)
    live.on_switch = lambda r: metrics.served(r.release_id, r.load_seconds, switched=live.switches > 0)
    live.on_error = lambda _: metrics.load_errors.inc()

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        if not live.refresh():  # loaded before this app: report it as served
            try:
                metrics.served(live.current().release_id, live.current().load_seconds, switched=False)
            except NoLiveRelease:
                pass
        if watch:
            live.start()
        try:
            yield
        finally:
            live.stop()

    app = FastAPI(
        title="Homepage Studio storefront API",
        version="1",
        description="The live release's homepages, similar items and search, never reading the dashboard's database.",
        lifespan=lifespan,
    )
    _install_errors(app)
    app.include_router(_v1(live, AnswerCache(settings().serve_cache, metrics.cache_lookup)))

    @app.get("/healthz", response_model=schemas.HealthOut, responses={503: {"model": schemas.HealthOut}})
    async def healthz():
        try:
            release = live.current()
        except NoLiveRelease as exc:
            return JSONResponse({"status": "no_release", "release_id": None, "error": str(exc)}, 503)
        status = "degraded" if live.error else "ok"
        return {"status": status, "release_id": release.release_id, "error": live.error}

    @app.get("/metrics", dependencies=[Depends(require_key)], summary="Prometheus metrics (text format)",
             response_class=Response, responses={200: {"content": {"text/plain": {}}}, 401: ERRORS[401]})  # fmt: skip
    async def prometheus():
        body, content_type = metrics.text()
        return Response(body, media_type=content_type)

    app.add_middleware(MetricsMiddleware, metrics=metrics)
    if settings().cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings().cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Content-Type", "X-API-Key"],
            expose_headers=["X-Release-Id"],
        )
    app.state.live = live
    return app
