"""The HTTP routes (docs/http-api.md). Views parse the body and call the worker's `ServiceState`; they hold no
SQL and no scoring."""

from __future__ import annotations

import hmac
import time
from typing import Any

from flask import Blueprint, Flask, Response, current_app, request

from service.errors import ApiError
from service.http_errors import json_response
from service.openapi import openapi_document
from service.state import ServiceState
from service.validation import parse_json, parse_reload

api = Blueprint("api", __name__)


def state() -> ServiceState:
    return current_app.extensions["sectionrank"]


@api.post("/v1/rerank")
def rerank() -> Response:
    return json_response(state().rerank(parse_json(request.get_data(cache=False))))


@api.post("/v1/feedback")
def feedback() -> Response:
    return json_response(state().feedback(parse_json(request.get_data(cache=False))))


@api.get("/v1/sections")
def sections() -> Response:
    st = state()
    loaded = st.require_loaded()
    out = []
    for s in loaded.sections:
        out.append(
            {
                "name": s.name,
                "description": s.description,
                "required_context": list(s.required_context),
                "pipeline": list(s.pipeline),
                "model": loaded.config.section_models[s.name],
                "ranker_version": loaded.pipeline.rankers[s.name].version,
                "arms": len(s.arms),
                "default_arm": s.default_arm.id,
                "serving": {
                    "default_k": s.serving.default_k,
                    "max_candidates": s.serving.max_candidates,
                    "latency_budget_ms": s.serving.latency_budget_ms,
                    "cache_size": s.serving.cache_size,
                },
            }
        )
    return json_response({"sections": out})


def models_payload(st: ServiceState) -> dict[str, Any]:
    loaded = st.require_loaded()
    policy = loaded.pipeline.policy
    return {
        "loaded_at": loaded.loaded_at,
        "heuristics": loaded.pipeline.heuristics,
        "policy": {
            "spec": st.config.policy,
            "version": str(getattr(policy, "version", type(policy).__name__)),
            "shipped_version": loaded.policy_version,
            "serving": loaded.policy_spec,
            "followed": str(st.followed) if st.followed is not None else None,
            "poll_seconds": st.config.policy_poll_seconds,
        },
        "worker": st.view(),
        "workers": st.views(),
        "section_models": {s.name: loaded.config.section_models[s.name] for s in loaded.sections},
        "models": {
            design: {
                "version": model.version,
                "path": str(model.path),
                "sections": list(model.sections),
                "contract": model.contract.to_dict(),
            }
            for design, model in loaded.models.items()
        },
    }


@api.get("/v1/models")
def models() -> Response:
    return json_response(models_payload(state()))


@api.post("/v1/models/reload")
def reload_models() -> Response:
    st = state()
    check_admin(st.config.admin_token)
    raw = request.get_data(cache=False)
    overrides = parse_reload(parse_json(raw)) if raw.strip() else {}
    started = time.perf_counter()
    st.reload(overrides)
    return json_response(
        {"reloaded": True, "seconds": round(time.perf_counter() - started, 4), **models_payload(st)}
    )


def check_admin(token: str) -> None:
    """401 unless the request carries ``Authorization: Bearer <admin token>``."""
    challenge = {"WWW-Authenticate": 'Bearer realm="sectionrank"'}
    if not token:
        raise ApiError(401, "reload is disabled: no admin token is configured", "Authorization", challenge)
    given = request.headers.get("Authorization", "")
    scheme, _, value = given.partition(" ")
    if scheme.lower() != "bearer" or not value:
        raise ApiError(401, "expected an 'Authorization: Bearer <token>' header", "Authorization", challenge)
    if not hmac.compare_digest(value.strip().encode(), token.encode()):
        raise ApiError(401, "wrong admin token", "Authorization", challenge)


@api.get("/healthz")
def healthz() -> Response:
    return json_response({"status": "ok"})


@api.get("/readyz")
def readyz() -> Response:
    st = state()
    st.require_loaded()
    writer = st.writer
    log = {
        "queued": writer.queued(),
        "held": writer.held(),
        "spill_bytes": writer.spill_bytes(),
        "write_errors": writer.write_errors,
        "last_error": writer.last_error or None,
    }
    if writer.degraded:
        # Reranks are still answered (with "logged": false); the probe says the log cannot take them.
        return json_response({"status": "degraded", "queued_decisions": log["queued"], "log": log}, 503)
    return json_response({"status": "ready", "queued_decisions": log["queued"], "log": log})


@api.get("/metrics")
def metrics() -> Response:
    return Response(state().metrics_text(), mimetype="text/plain; version=0.0.4")


@api.get("/openapi.json")
def openapi() -> Response:
    loaded = state().loaded
    return json_response(openapi_document(() if loaded is None else tuple(loaded.sections.sections)))


def _count(response: Response) -> Response:
    endpoint = request.url_rule.rule if request.url_rule is not None else "unmatched"
    st = current_app.extensions.get("sectionrank")
    if st is not None:
        st.metrics.count_http(endpoint, response.status_code)
    return response


def init_app(app: Flask) -> None:
    app.register_blueprint(api)
    app.after_request(_count)
