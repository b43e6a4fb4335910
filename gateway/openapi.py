"""The OpenAPI 3.1 document served at /api/v1/openapi.json, made from the route table
(gateway/api.py ROUTES) and the declarations it names: request models and response types
(gateway/shapes.py, storage/models.py) and event data (gateway/events.py). Nothing in it is
written twice, so it cannot say something the server does not do."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, TypeAdapter

from gateway.events import EVENT_DATA
from gateway.names import EVENT_TYPES
from gateway.shapes import Error

REF = "#/components/schemas/{model}"


@dataclass(frozen=True)
class PageOf:
    """A response that is one page of `item`s: {items, next_cursor}."""

    item: Any


def _clean(schema: Any) -> Any:
    """pydantic's schemas without the titles it makes up from field names."""
    if isinstance(schema, dict):
        return {k: _clean(v) for k, v in schema.items()
                if not (k == "title" and isinstance(v, str))}
    if isinstance(schema, list):
        return [_clean(v) for v in schema]
    return schema


def _without_null(schema: dict[str, Any]) -> dict[str, Any]:
    """`X | None` as a query parameter: absent is None; the text sent is an X."""
    options = schema.get("anyOf")
    if options and {"type": "null"} in options:
        rest = [o for o in options if o != {"type": "null"}]
        merged = {k: v for k, v in schema.items() if k not in ("anyOf", "default")}
        return {**(rest[0] if len(rest) == 1 else {"anyOf": rest}), **merged}
    return {k: v for k, v in schema.items() if k != "default"} if "default" in schema \
        and schema["default"] is None else schema


class Schemas:
    """Component schemas collected while the document is made."""

    def __init__(self) -> None:
        self.components: dict[str, Any] = {}

    def of(self, kind: Any, mode: str = "serialization") -> dict[str, Any]:
        if kind is None:
            return {"type": "object"}
        if isinstance(kind, PageOf):
            return {"type": "object", "required": ["items", "next_cursor"],
                    "additionalProperties": False, "properties": {
                        "items": {"type": "array", "items": self.of(kind.item, mode)},
                        "next_cursor": {"type": ["string", "null"],
                                        "description": "Pass as `cursor` for the next page;"
                                                       " null on the last."}}}
        schema = TypeAdapter(kind).json_schema(ref_template=REF, mode=mode)  # type: ignore[arg-type]
        for name, sub in schema.pop("$defs", {}).items():
            self.components.setdefault(name, _clean(sub))
        name = getattr(kind, "__name__", None)
        if name and schema.get("type") == "object" and "properties" in schema:
            self.components.setdefault(name, _clean(schema))
            return {"$ref": REF.format(model=name)}
        return _clean(schema)

    def parameters(self, model: type[BaseModel]) -> list[dict[str, Any]]:
        schema = model.model_json_schema(ref_template=REF)
        for name, sub in schema.pop("$defs", {}).items():
            self.components.setdefault(name, _clean(sub))
        required = set(schema.get("required", ()))
        found = []
        for name, prop in schema.get("properties", {}).items():
            prop = _clean(prop)
            description = prop.pop("description", None)
            parameter = {"name": name, "in": "query", "required": name in required,
                         "schema": _without_null(prop)}
            if description:
                parameter["description"] = description
            found.append(parameter)
        return found


_ERROR_TEXT = {400: "The request is invalid: every problem, each with its field",
               401: "Missing or wrong credentials", 404: "No such resource",
               408: "The body did not arrive in time", 409: "Contradicts what is stored",
               413: "Body over the configured limit",
               501: "The connector does not do this", 502: "The partner failed",
               503: "The partner rate limited us, or is unavailable"}


def _operation(route: Any, schemas: Schemas) -> dict[str, Any]:
    parameters = [{"name": name, "in": "path", "required": True, "schema": schemas.of(kind,
                                                                                      "validation")}
                  for name, kind in route.path_params.items()]
    if route.query is not None:
        parameters += schemas.parameters(route.query)
    operation: dict[str, Any] = {"summary": route.summary, "operationId": route.operation_id}
    if route.description:
        operation["description"] = route.description
    if parameters:
        operation["parameters"] = parameters
    if not route.secured:
        operation["security"] = []
    if route.body is not None or route.body_schema is not None:
        body = schemas.of(route.body, "validation") if route.body else route.body_schema
        operation["requestBody"] = {"required": route.body_required, "content": {
            "application/json": {"schema": body}}}
    responses: dict[str, Any] = {}
    for status, (kind, description) in sorted(route.responses.items()):
        if isinstance(kind, dict):
            responses[str(status)] = {"description": description, "content": {
                "application/json": {"schema": kind}}}
        elif kind == "text":
            responses[str(status)] = {"description": description, "content": {
                "text/plain": {"schema": {"type": "string"}}}}
        else:
            responses[str(status)] = {"description": description, "content": {
                "application/json": {"schema": schemas.of(kind)}}}
    for status in sorted(route.errors()):
        responses.setdefault(str(status), {"description": _ERROR_TEXT[status], "content": {
            "application/json": {"schema": schemas.of(Error)}}})
    operation["responses"] = responses
    return operation


def _webhooks(schemas: Schemas) -> dict[str, Any]:
    """The events subscribers receive, signed per Standard Webhooks."""
    headers = [{"name": name, "in": "header", "required": True, "schema": {"type": "string"},
                "description": text} for name, text in (
        ("webhook-id", "The event id; the same on every retry: drop repeats by it"),
        ("webhook-timestamp", "Unix seconds of this attempt"),
        ("webhook-signature", "Space-separated v1,<base64 HMAC-SHA256 of id.timestamp.body>"
                              " signatures: two while a secret is being rotated"))]
    hooks = {}
    for event_type in EVENT_TYPES:
        summary, data = EVENT_DATA[event_type]
        hooks[event_type] = {"post": {
            "summary": summary, "operationId": f"event.{event_type}", "security": [],
            "parameters": headers,
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "required": ["id", "type", "timestamp", "data"],
                "properties": {"id": {"type": "string"}, "type": {"const": event_type},
                               "timestamp": {"type": "string", "format": "date-time"},
                               "data": schemas.of(data)}}}}},
            "responses": {"200": {"description": "Any 2xx: received. 400, 401, 403, 404 and"
                                                 " 422 give up at once; others are retried"}}}}
    return hooks


def document(routes: Sequence[Any], webhook_parameters: Mapping[str, Any] | None = None
             ) -> dict[str, Any]:
    """The whole document; `webhook_parameters`: the query parameters the configured
    connectors' webhooks carry (gateway.connector.WebhookParameter), by name."""
    schemas = Schemas()
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        operation = _operation(route, schemas)
        if route.path.startswith("/webhooks/") and webhook_parameters:
            operation.setdefault("parameters", []).extend(
                {"name": p.name, "in": "query", "required": False,
                 "schema": {"type": "string"}, "description": p.description}
                for p in webhook_parameters.values())
        paths.setdefault(route.path, {})[route.method.lower()] = operation
    hooks = _webhooks(schemas)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Fulfillment gateway", "version": "1",
                 "description": "Fulfillment orders, reconciled shipments, connectors."},
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "webhooks": hooks,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": dict(sorted(schemas.components.items())),
        },
    }
