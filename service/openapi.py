"""The OpenAPI 3.1 document of the HTTP API, served at GET /openapi.json.

The schemas are JSON Schema 2020-12 (OpenAPI 3.1), so the tests validate real responses against them with
`jsonschema`, and tests/service/test_schema_fuzz.py sends the app requests generated from them. They say what
service/validation.py enforces, as far as JSON Schema can: the section names of the loaded sections config,
ids of one type per candidate list, the length limits, the required fields.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from service.config import DESIGNS
from service.validation import INT64, MAX_FEEDBACK_ITEMS, MAX_ID_CHARS, MAX_SHORT_CHARS, MAX_TEXT_CHARS

INT_ID = {"type": "integer", "minimum": INT64[0], "maximum": INT64[1]}
STR_ID = {"type": "string", "minLength": 1, "maxLength": MAX_ID_CHARS}
ID = {"oneOf": [INT_ID, STR_ID]}


def _candidates(ids: dict[str, Any]) -> dict[str, Any]:
    """One form of a candidate list: ids of one type, plain or as objects with an id (other keys ignored)."""
    return {
        "type": "array",
        "minItems": 1,
        "uniqueItems": True,
        "items": {"oneOf": [ids, {"type": "object", "properties": {"id": ids}, "required": ["id"]}]},
    }


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(properties: dict[str, Any], required: list[str], *, extra: bool = False) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": extra,
    }


PATH = {"type": "string", "minLength": 1, "maxLength": MAX_TEXT_CHARS}

SCHEMAS: dict[str, Any] = {
    "Id": ID,
    "Error": _obj(
        {
            "error": _obj(
                {
                    "status": {"type": "integer", "minimum": 400, "maximum": 599},
                    "field": {"type": ["string", "null"]},
                    "message": {"type": "string"},
                },
                ["status", "field", "message"],
            )
        },
        ["error"],
    ),
    "RerankRequest": _obj(
        {
            "section": {"type": "string", "minLength": 1, "maxLength": MAX_SHORT_CHARS},
            "user": _obj({"id": _ref("Id"), "features": {"type": "object"}}, ["id"]),
            "context": _obj(
                {
                    "source_item": _ref("Id"),
                    "category": _ref("Id"),
                    "query": {"type": "string", "maxLength": MAX_TEXT_CHARS},
                    "device": {"type": "string", "minLength": 1, "maxLength": MAX_SHORT_CHARS},
                    "time": {"type": "number", "minimum": 0, "maximum": 1e11},
                },
                [],
            ),
            "candidates": {
                "description": "Distinct item ids, all integers or all strings, plain or as objects with an "
                "id (other keys ignored); at most the section's max_candidates.",
                "oneOf": [_candidates(INT_ID), _candidates(STR_ID)],
            },
            "k": {"type": "integer", "minimum": 1, "description": "At most the section's max_candidates."},
            "request_id": {"type": "string", "minLength": 1, "maxLength": MAX_ID_CHARS},
        },
        ["section", "user", "candidates"],
    ),
    "RerankResponse": _obj(
        {
            "event_id": {"type": "string"},
            "section": {"type": "string"},
            "items": {
                "type": "array",
                "items": _obj(
                    {
                        "id": _ref("Id"),
                        "score": {"type": ["number", "null"]},
                        "rank": {"type": "integer", "minimum": 1},
                    },
                    ["id", "score", "rank"],
                ),
            },
            "arm": _obj(
                {
                    "id": {"type": "string"},
                    "knobs": {"type": "object", "additionalProperties": {"type": "number"}},
                    "propensity": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
                },
                ["id", "knobs", "propensity"],
            ),
            "model_versions": {"type": "object", "additionalProperties": {"type": "string"}},
            "timing": {"type": "object", "additionalProperties": {"type": "number"}, "required": ["total"]},
            "fallback": {"enum": [None, "input_order", "base_order"]},
            "cached": {"type": "boolean"},
            "logged": {
                "type": "boolean",
                "description": "false when neither the log nor the spill journal can take the decision",
            },
            "request_id": {"type": "string"},
        },
        ["event_id", "section", "items", "arm", "model_versions", "timing", "fallback", "cached", "logged"],
    ),
    "Slot": {
        "oneOf": [
            _ref("Id"),
            _obj({"position": {"type": "integer", "minimum": 0, "maximum": 2**31}}, ["position"]),
        ]
    },
    "FeedbackRequest": _obj(
        {
            "event_id": {"type": "string", "minLength": 1, "maxLength": MAX_ID_CHARS},
            "clicks": {"type": "array", "items": _ref("Slot"), "maxItems": MAX_FEEDBACK_ITEMS},
            "conversions": {"type": "array", "items": _ref("Slot"), "maxItems": MAX_FEEDBACK_ITEMS},
            "revenue": {"type": "number", "minimum": 0},
            "reward": {"type": "number"},
            "time": {"type": "number", "minimum": 0, "maximum": 1e11},
        },
        ["event_id", "clicks"],
    ),
    "FeedbackResponse": _obj(
        {
            "event_id": {"type": "string"},
            "stored": {
                "type": "boolean",
                "description": "false when feedback on this event was stored before",
            },
            "late": {"type": "boolean"},
            "clicks": {"type": "array", "items": {"type": "integer", "minimum": 0}},
            "conversions": {"type": "array", "items": {"type": "integer", "minimum": 0}},
            "logged": {"type": "boolean"},
        },
        ["event_id", "stored", "late", "clicks", "conversions", "logged"],
    ),
    "Sections": _obj(
        {
            "sections": {
                "type": "array",
                "items": _obj(
                    {
                        "name": {"type": "string"},
                        "description": {"type": "string"},
                        "required_context": {"type": "array", "items": {"type": "string"}},
                        "pipeline": {"type": "array", "items": {"type": "string"}},
                        "model": {"enum": list(DESIGNS)},
                        "ranker_version": {"type": "string"},
                        "arms": {"type": "integer", "minimum": 1},
                        "default_arm": {"type": "string"},
                        "serving": _obj(
                            {
                                "default_k": {"type": "integer"},
                                "max_candidates": {"type": "integer"},
                                "latency_budget_ms": {"type": "number"},
                                "cache_size": {"type": "integer"},
                            },
                            ["default_k", "max_candidates", "latency_budget_ms", "cache_size"],
                        ),
                    },
                    ["name", "required_context", "model", "arms", "default_arm", "serving"],
                    extra=True,
                ),
            }
        },
        ["sections"],
    ),
    "Models": _obj(
        {
            "loaded_at": {"type": "number"},
            "heuristics": {"type": "boolean"},
            "policy": _obj(
                {
                    "spec": {"type": "string"},
                    "version": {"type": "string"},
                    "shipped_version": {"type": ["string", "null"]},
                    "serving": {"type": "string"},
                    "followed": {"type": ["string", "null"]},
                    "poll_seconds": {"type": "number"},
                },
                ["spec", "version", "shipped_version", "serving", "followed", "poll_seconds"],
            ),
            "worker": _ref("WorkerView"),
            "workers": {"type": "array", "items": _ref("WorkerView")},
            "section_models": {"type": "object", "additionalProperties": {"type": "string"}},
            "models": {
                "type": "object",
                "additionalProperties": _obj(
                    {
                        "version": {"type": "string"},
                        "path": {"type": "string"},
                        "sections": {"type": "array", "items": {"type": "string"}},
                        "contract": {"type": "object"},
                    },
                    ["version", "path", "sections", "contract"],
                ),
            },
            "reloaded": {"const": True},
            "seconds": {"type": "number"},
        },
        ["loaded_at", "policy", "worker", "workers", "section_models", "models"],
    ),
    "WorkerView": _obj(
        {
            "pid": {"type": "integer"},
            "policy_version": {"type": ["string", "null"], "description": "The shipped version it serves"},
            "policy": {"type": ["string", "null"]},
            "loaded_at": {"type": ["number", "null"]},
            "followed": {"type": ["string", "null"]},
            "checked_at": {"type": ["number", "null"]},
            "refused": {
                "oneOf": [
                    {"type": "null"},
                    _obj(
                        {
                            "version": {"type": "string"},
                            "key": {"type": ["string", "null"]},
                            "problem": {"type": "string"},
                            "at": {"type": "number"},
                        },
                        ["version", "key", "problem", "at"],
                    ),
                ]
            },
        },
        ["pid", "policy_version", "policy", "loaded_at", "followed", "checked_at", "refused"],
    ),
    "ReloadRequest": _obj(
        {
            "models": _obj({design: _ref("Path") for design in DESIGNS}, []),
            "policy": {**PATH, "description": "A policy spec or a VW policy directory"},
            "section_models": {"type": "object", "additionalProperties": {"enum": list(DESIGNS)}},
        },
        [],
    ),
    "Path": PATH,
    "Health": _obj({"status": {"const": "ok"}}, ["status"]),
    "Ready": _obj(
        {
            "status": {"enum": ["ready", "degraded"]},
            "queued_decisions": {"type": "integer", "minimum": 0},
            "log": _obj(
                {
                    "queued": {"type": "integer", "minimum": 0},
                    "held": {"type": "integer", "minimum": 0},
                    "spill_bytes": {"type": "integer", "minimum": 0},
                    "write_errors": {"type": "integer", "minimum": 0},
                    "last_error": {"type": ["string", "null"]},
                },
                ["queued", "held", "spill_bytes", "write_errors", "last_error"],
            ),
        },
        ["status"],
    ),
}


def _section_schemas(sections: tuple[str, ...]) -> dict[str, Any]:
    if not sections:
        return {}
    request = SCHEMAS["RerankRequest"]
    section = {"type": "string", "enum": list(sections)}
    return {"RerankRequest": {**request, "properties": {**request["properties"], "section": section}}}


def _json(schema: str) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": _ref(schema)}}}


def _errors(*codes: int) -> dict[str, Any]:
    reasons = {
        400: "Malformed JSON, or a body shorter than its Content-Length",
        401: "Missing or wrong admin token",
        404: "Unknown event or route",
        408: "The body did not arrive within the read timeout",
        413: "Body larger than max_body_bytes",
        415: "A body that is not application/json",
        422: "Invalid field (named in error.field)",
        503: "No models loaded, the decision queue is full, or the decision log cannot be read",
    }
    return {str(c): {"description": reasons[c], **_json("Error")} for c in codes}


PATHS: dict[str, Any] = {
    "/v1/rerank": {
        "post": {
            "summary": "Re-rank candidates for one section request",
            "requestBody": {"required": True, **_json("RerankRequest")},
            "responses": {"200": {"description": "The ranked items", **_json("RerankResponse")}}
            | _errors(400, 408, 413, 415, 422, 503),
        }
    },
    "/v1/feedback": {
        "post": {
            "summary": "Clicks, conversions and reward on a served decision (idempotent)",
            "requestBody": {"required": True, **_json("FeedbackRequest")},
            "responses": {"200": {"description": "Stored, or a repeat", **_json("FeedbackResponse")}}
            | _errors(400, 404, 408, 413, 415, 422, 503),
        }
    },
    "/v1/sections": {
        "get": {
            "summary": "The served sections",
            "responses": {"200": {"description": "Sections", **_json("Sections")}} | _errors(503),
        }
    },
    "/v1/models": {
        "get": {
            "summary": "Loaded model versions and inference contracts",
            "responses": {"200": {"description": "Models", **_json("Models")}} | _errors(503),
        }
    },
    "/v1/models/reload": {
        "post": {
            "summary": "Load new models/policy, check and smoke-test them, then swap (admin)",
            "security": [{"bearer": []}],
            "requestBody": {"required": False, **_json("ReloadRequest")},
            "responses": {"200": {"description": "Reloaded", **_json("Models")}}
            | _errors(400, 401, 408, 413, 415, 422),
        }
    },
    "/healthz": {
        "get": {"summary": "Liveness", "responses": {"200": {"description": "Alive", **_json("Health")}}}
    },
    "/readyz": {
        "get": {
            "summary": "Readiness: 503 until models are loaded",
            "responses": {
                "200": {"description": "Ready", **_json("Ready")},
                "503": {
                    "description": "No models loaded (an error), or degraded: neither the log nor the spill "
                    "journal can be written (reranks are still answered, with logged: false)",
                    "content": {"application/json": {"schema": {"oneOf": [_ref("Error"), _ref("Ready")]}}},
                },
            },
        }
    },
    "/metrics": {
        "get": {
            "summary": "Prometheus metrics of the whole service (every worker)",
            "responses": {
                "200": {
                    "description": "Prometheus text",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                }
            },
        }
    },
    "/openapi.json": {
        "get": {
            "summary": "This document",
            "responses": {
                "200": {
                    "description": "OpenAPI 3.1",
                    "content": {"application/json": {"schema": {"type": "object"}}},
                }
            },
        }
    },
}


@cache
def openapi_document(sections: tuple[str, ...] = ()) -> dict[str, Any]:
    """The OpenAPI document (built once per tuple of section names): a request's ``section`` is one of
    `sections`, the names in the loaded sections config (any string when empty: nothing is loaded)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        package_version = version("sectionrank")
    except PackageNotFoundError:
        package_version = "0"
    return {
        "openapi": "3.1.0",
        "info": {"title": "sectionrank", "version": package_version, "description": "See docs/http-api.md."},
        "paths": PATHS,
        "components": {
            "schemas": SCHEMAS | _section_schemas(sections),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
