"""The OpenAPI 3.1 document served at /api/v1/openapi.json; a test checks it against the routes."""

from __future__ import annotations

from typing import Any

from gateway.domain.records import (
    FO_STATUSES,
    LINK_ROLES,
    LINK_STATES,
    REF_KINDS,
    SHIPMENT_STATUSES,
)
from gateway.names import EVENT_TYPES, INVOICE_TIMINGS


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _page_of(name: str) -> dict[str, Any]:
    return {"type": "object", "required": ["items", "next_cursor"], "properties": {
        "items": {"type": "array", "items": _ref(name)},
        "next_cursor": {"type": ["string", "null"],
                        "description": "Pass as `cursor` for the next page; null on the last."}}}


ERRORS = {
    "400": {"$ref": "#/components/responses/BadRequest"},
    "401": {"$ref": "#/components/responses/Unauthorized"},
}
NOT_FOUND = {"404": {"$ref": "#/components/responses/NotFound"}}
PAGING = [
    {"name": "cursor", "in": "query", "schema": {"type": "string"}},
    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 200}},
]


def _id_param(name: str = "id") -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def _schemas() -> dict[str, Any]:
    nullable_str = {"type": ["string", "null"]}
    return {
        "Error": {"type": "object", "required": ["error"], "properties": {"error": {
            "type": "object", "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}}},
        "FulfillmentOrderRequest": {
            "type": "object", "required": ["lines"], "additionalProperties": False,
            "properties": {
                "id": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$",
                       "description": "Client-chosen; makes the call idempotent."},
                "channel": {"type": "string"}, "order_number": {"type": "string"},
                "lines": {"type": "array", "minItems": 1, "items": {
                    "type": "object", "required": ["sku", "quantity"],
                    "properties": {"sku": {"type": "string"},
                                   "quantity": {"type": "integer", "minimum": 1},
                                   "line_id": {"type": "string"}}}},
                "ship_to": {"type": "object"}, "custom_fields": {"type": "object"},
                "external_refs": {"type": "array", "items": {
                    "type": "object", "required": ["kind", "value"], "properties": {
                        "kind": {"enum": ["order_number", "partner_order_id"]},
                        "value": {"type": "string"}}}}}},
        "FulfillmentOrder": {
            "type": "object",
            "required": ["id", "status", "lines", "shipments", "timeline"],
            "properties": {
                "id": {"type": "string"}, "channel": nullable_str, "order_number": nullable_str,
                "status": {"enum": list(FO_STATUSES)},
                "ship_to": {"type": "object"}, "custom_fields": {"type": "object"},
                "created_at": {"type": "string", "format": "date-time"},
                "updated_at": {"type": "string", "format": "date-time"},
                "lines": {"type": "array", "items": {
                    "type": "object", "required": ["line_id", "sku", "requested", "fulfilled"],
                    "properties": {"line_id": {"type": "string"}, "sku": {"type": "string"},
                                   "requested": {"type": "integer"},
                                   "fulfilled": {"type": "integer"}}}},
                "external_refs": {"type": "array", "items": _ref("OrderRef")},
                "flow": {"enum": ["api", "invoice_first", "partner"]},
                "invoice_id": nullable_str,
                "links": {"type": "array", "items": _ref("PartnerLink"),
                          "description": "every partner this FO touches"},
                "outbound": {"type": "array", "description": "Pushes to partners: scheduled,"
                             " sent, cancelled or failed", "items": _ref("OutboundPush")},
                "shipments": {"type": "array", "items": _ref("Shipment")},
                "timeline": {"type": "array", "items": {
                    "type": "object", "properties": {
                        "at": {"type": "string"}, "kind": {"type": "string"},
                        "from_status": nullable_str, "to_status": nullable_str,
                        "detail": {"type": "object"}}}}}},
        "FulfillmentOrderSummary": {
            "type": "object", "required": ["id", "status", "lines"],
            "properties": {"id": {"type": "string"}, "status": {"enum": list(FO_STATUSES)},
                           "order_number": nullable_str, "channel": nullable_str,
                           "updated_at": {"type": "string"},
                           "lines": {"type": "array", "items": {"type": "object"}}}},
        "OrderRef": {"type": "object", "required": ["kind", "value"], "properties": {
            "kind": {"enum": list(REF_KINDS)}, "value": {"type": "string"}}},
        "Shipment": {
            "type": "object",
            "required": ["id", "source", "external_id", "status", "lines", "allocations"],
            "properties": {
                "id": {"type": "string"}, "source": {"type": "string"},
                "external_id": {"type": "string"},
                "order_refs": {"type": "array", "items": _ref("OrderRef")},
                "lines": {"type": "array", "items": {"type": "object", "properties": {
                    "sku": {"type": "string"}, "quantity": {"type": "integer"},
                    "partner_line_id": nullable_str}}},
                "status": {"enum": list(SHIPMENT_STATUSES)},
                "carrier": nullable_str, "service": nullable_str,
                "tracking_numbers": {"type": "array", "items": {"type": "string"}},
                "tracking_url": nullable_str, "shipped_at": nullable_str,
                "partner_updated_at": {"type": "string"},
                "match_state": {"enum": ["matched", "unmatched"]},
                "match_rule": nullable_str, "unmatched_reason": nullable_str,
                "candidates": {"type": "array", "items": {"type": "string"}},
                "fulfillment_order_ids": {"type": "array", "items": {"type": "string"}},
                "allocations": {"type": "array", "items": {"type": "object", "properties": {
                    "fo_id": {"type": "string"}, "line_id": {"type": "string"},
                    "sku": {"type": "string"}, "quantity": {"type": "integer"}}}},
                "overshipped": {"type": "object",
                                "additionalProperties": {"type": "integer"}}}},
        "Connector": {"type": "object", "required": ["name", "type", "enabled"], "properties": {
            "name": {"type": "string"}, "type": {"type": "string"}, "enabled": {"type": "boolean"},
            "webhooks": {"type": "boolean"},
            "feeds": {"type": "array", "items": _ref("Feed")},
            "operations": {"type": "array", "items": {"type": "string"},
                           "description": "Outbound operations it carries out"},
            "unsupported": {"type": "object", "additionalProperties": {"type": "string"},
                            "description": "Operations it declares it does not do, and why"
                                           " (asked for, they answer 501)"},
            "record_kinds": {"type": "array", "items": {"type": "object", "properties": {
                "name": {"type": "string"},
                "writes": {"type": "array", "items": {"enum": ["create", "update", "archive"]}},
                "description": {"type": "string"}}}},
            "rate_limit": {"type": "object"}}},
        "Feed": {"type": "object", "required": ["name", "enabled", "interval_minutes"],
                 "properties": {
            "name": {"type": "string"}, "description": {"type": "string"},
            "enabled": {"type": "boolean"}, "interval_minutes": {"type": "number"},
            "cursor": nullable_str, "last_poll_at": nullable_str,
            "last_result": {"type": ["object", "null"]}, "last_error": nullable_str,
            "last_error_at": nullable_str,
            "running": {"type": "boolean", "description": "a process holds this feed's lease"},
            "lease_owner": {**nullable_str, "description": "the process (replica) holding it"},
            "lease_until": nullable_str}},
        "PartnerRecord": {"type": "object", "required": ["id", "connector", "kind", "fields"],
                          "properties": {
            "id": {"type": "string"}, "connector": {"type": "string"},
            "kind": {"type": "string"}, "fields": {"type": "object"},
            "updated_at": {"type": "string"}, "archived": {"type": "boolean"}}},
        "PartnerOrder": {"type": "object", "required": ["connector", "id", "status"],
                         "properties": {
            "connector": {"type": "string"}, "id": {"type": "string"},
            "order_number": nullable_str, "status": {"enum": ["open", "cancelled", "closed"]},
            "lines": {"type": "array", "items": {"type": "object"}},
            "ship_to": {"type": "object"}, "customer_ref": nullable_str,
            "partner_updated_at": {"type": "string"},
            "fulfillment_order_id": {"type": ["string", "null"],
                                     "description": "null: no channel takes these orders"},
            "recorded_at": {"type": "string"}, "raw": {"type": "object"}}},
        "PartnerLink": {"type": "object", "required": ["connector", "role", "state"],
                        "properties": {
            "fo_id": {"type": "string"}, "connector": {"type": "string"},
            "role": {"enum": list(LINK_ROLES)}, "partner_order_id": nullable_str,
            "state": {"enum": list(LINK_STATES)}, "watch_until": nullable_str,
            "pushed": {"type": "object", "description": "per shipment id: the partner's id"
                                                         " for what was pushed, and its status"},
            "last_result": {"type": ["object", "null"]}, "updated_at": nullable_str}},
        "PollResult": {"type": "object", "required": ["connector", "records", "new_events",
                                                      "feeds"],
                       "properties": {"connector": {"type": "string"},
                                      "records": {"type": "integer"},
                                      "new_events": {"type": "integer"},
                                      "feeds": {"type": "object", "additionalProperties": {
                                          "type": "object", "properties": {
                                              "records": {"type": "integer"},
                                              "new_events": {"type": "integer"},
                                              "cursor": {"type": "string"}}}}}},
        "DeadLetter": {"type": "object", "required": ["id", "error"], "properties": {
            "id": {"type": "string", "description": "inbox-N or outbox-N"},
            "source": {"enum": ["inbox", "outbox"]}, "connector": nullable_str,
            "destination": nullable_str, "delivery_key": nullable_str,
            "fulfillment_order_id": nullable_str,
            "kind": {"type": "string"}, "received_at": {"type": "string"},
            "attempts": {"type": "integer"}, "error": nullable_str, "failed_at": nullable_str}},
        "OutboundPush": {"type": "object", "required": ["id", "kind", "status"], "properties": {
            "id": {"type": "string"}, "destination": {"type": "string"},
            "kind": {"enum": ["push_order", "cancel_order", "push_fulfillment"]},
            "status": {"enum": ["pending", "sent", "cancelled", "dead"]},
            "not_before": {"type": "string"}, "attempts": {"type": "integer"},
            "last_error": nullable_str, "result": {"type": ["object", "null"]},
            "updated_at": {"type": "string"}}},
        "Channel": {"type": "object", "required": ["name", "internal"], "properties": {
            "name": {"type": "string"}, "warehouse_group": nullable_str,
            "internal": {"type": "boolean"}, "description": {"type": "string"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "oms": {"type": ["object", "null"], "properties": {
                "connector": {"type": "string"}, "store_id": {"type": ["integer", "string",
                                                                       "null"]},
                "delay_minutes": {"type": "number"}}},
            "push_fulfillment_updates": {"type": "boolean"},
            "custom_fields": {"type": "object", "additionalProperties": {"type": "string"},
                              "description": "gateway field -> the partner's field (dotted)"},
            "invoice_timing": {"enum": [*INVOICE_TIMINGS, None]},
            "source_connector": nullable_str}},
        "ChannelOrderRequest": {
            "description": "An invoiced order (invoice first): a FulfillmentOrderRequest"
                           " without channel, plus the invoice's id.",
            "type": "object", "required": ["invoice_id", "lines"], "properties": {
                "invoice_id": {"type": "string"}, "id": {"type": "string"},
                "order_number": {"type": "string"}, "lines": {"type": "array"},
                "ship_to": {"type": "object"}, "custom_fields": {"type": "object"}}},
        "MatchRequest": {"type": "object", "required": ["fulfillment_order_ids"], "properties": {
            "fulfillment_order_ids": {"type": "array", "minItems": 1,
                                      "items": {"type": "string"}}}},
    }


def _paths() -> dict[str, Any]:
    fo = _ref("FulfillmentOrder")
    return {
        "/api/v1/fulfillment-orders": {
            "post": {"summary": "Create a fulfillment order (idempotent with a client id)",
                     "operationId": "createFulfillmentOrder",
                     "requestBody": {"required": True, "content": {"application/json": {
                         "schema": _ref("FulfillmentOrderRequest")}}},
                     "responses": {"201": _json(fo, "Created"),
                                   "200": _json(fo, "The same request again: the same FO"),
                                   "409": {"$ref": "#/components/responses/Conflict"}, **ERRORS}},
            "get": {"summary": "List fulfillment orders", "operationId": "listFulfillmentOrders",
                    "parameters": [
                        {"name": "status", "in": "query", "schema": {"enum": list(FO_STATUSES)}},
                        {"name": "updated_since", "in": "query",
                         "schema": {"type": "string", "format": "date-time"}}, *PAGING],
                    "responses": {"200": _json(_page_of("FulfillmentOrderSummary"), "A page"),
                                  **ERRORS}}},
        "/api/v1/fulfillment-orders/{id}": {
            "get": {"summary": "A fulfillment order with lines, shipments and timeline",
                    "operationId": "getFulfillmentOrder", "parameters": [_id_param()],
                    "responses": {"200": _json(fo, "The FO"), **ERRORS, **NOT_FOUND}}},
        "/api/v1/fulfillment-orders/{id}/cancel": {
            "post": {"summary": "Cancel a fulfillment order",
                     "operationId": "cancelFulfillmentOrder", "parameters": [_id_param()],
                     "responses": {"200": _json(fo, "The cancelled FO"), **ERRORS, **NOT_FOUND}}},
        "/api/v1/shipments": {
            "get": {"summary": "Canonical shipments with their allocations",
                    "operationId": "listShipments",
                    "parameters": [{"name": "fulfillment_order_id", "in": "query",
                                    "schema": {"type": "string"}}, *PAGING],
                    "responses": {"200": _json(_page_of("Shipment"), "A page"), **ERRORS}}},
        "/api/v1/shipments/{id}": {
            "get": {"summary": "One canonical shipment", "operationId": "getShipment",
                    "parameters": [_id_param()],
                    "responses": {"200": _json(_ref("Shipment"), "The shipment"), **ERRORS,
                                  **NOT_FOUND}}},
        "/api/v1/unmatched-shipments": {
            "get": {"summary": "Shipments no rule could match, with reason and candidates",
                    "operationId": "listUnmatchedShipments", "parameters": PAGING,
                    "responses": {"200": _json(_page_of("Shipment"), "A page"), **ERRORS}}},
        "/api/v1/unmatched-shipments/{id}/match": {
            "post": {"summary": "Match an unmatched shipment by hand",
                     "operationId": "matchShipment", "parameters": [_id_param()],
                     "requestBody": {"required": True, "content": {"application/json": {
                         "schema": _ref("MatchRequest")}}},
                     "responses": {"200": _json(_ref("Shipment"), "The matched shipment"),
                                   "409": {"$ref": "#/components/responses/Conflict"},
                                   **ERRORS, **NOT_FOUND}}},
        "/api/v1/channels": {
            "get": {"summary": "The configured sales channels", "operationId": "listChannels",
                    "responses": {"200": _json(_page_of("Channel"), "All channels"), **ERRORS}}},
        "/api/v1/channels/{name}/orders": {
            "post": {"summary": "Invoice first: create (and push) the FO of an invoiced order",
                     "operationId": "createChannelOrder", "parameters": [_id_param("name")],
                     "requestBody": {"required": True, "content": {"application/json": {
                         "schema": _ref("ChannelOrderRequest")}}},
                     "responses": {"201": _json(fo, "Created"),
                                   "200": _json(fo, "The same request again: the same FO"),
                                   "409": {"$ref": "#/components/responses/Conflict"},
                                   **ERRORS, **NOT_FOUND}}},
        "/api/v1/connectors": {
            "get": {"summary": "Connector health: last poll, cursor, errors, rate-limit state",
                    "operationId": "listConnectors",
                    "responses": {"200": _json(_page_of("Connector"), "All connectors"),
                                  **ERRORS}}},
        "/api/v1/connectors/{name}/poll": {
            "post": {"summary": "Poll a connector now: every enabled feed, or ?feed=",
                     "operationId": "pollConnector",
                     "parameters": [_id_param("name"), {
                         "name": "feed", "in": "query", "schema": {"type": "string"},
                         "description": "only this feed (404 if it has none such, 409 if the"
                                        " feed is turned off)"}],
                     "responses": {"200": _json(_ref("PollResult"), "What the poll found"),
                                   "502": {"$ref": "#/components/responses/PartnerError"},
                                   "503": {"$ref": "#/components/responses/PartnerError"},
                                   **ERRORS, **NOT_FOUND}}},
        "/api/v1/dead-letters": {
            "get": {"summary": "Inbox events and outbound messages that gave up",
                    "operationId": "listDeadLetters", "parameters": PAGING,
                    "responses": {"200": _json(_page_of("DeadLetter"), "A page"), **ERRORS}}},
        "/api/v1/dead-letters/{id}/replay": {
            "post": {"summary": "Put a dead letter back in the queue",
                     "operationId": "replayDeadLetter", "parameters": [_id_param()],
                     "responses": {"202": _json({"type": "object"}, "Queued again"), **ERRORS,
                                   **NOT_FOUND}}},
        "/api/v1/dead-letters/{id}/discard": {
            "post": {"summary": "Give up on a dead letter for good: no longer listed or"
                                " replayed", "operationId": "discardDeadLetter",
                     "parameters": [_id_param()],
                     "responses": {"200": _json({"type": "object"}, "Discarded"), **ERRORS,
                                   **NOT_FOUND}}},
        **_partner_paths(),
        "/api/v1/openapi.json": {
            "get": {"summary": "This document", "operationId": "openapi",
                    "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1"), **ERRORS}}},
        "/webhooks/{connector}": {
            "post": {"summary": "A partner's webhook; verified by the connector, not a token",
                     "operationId": "receiveWebhook", "security": [],
                     "parameters": [_id_param("connector")],
                     "requestBody": {"required": True, "content": {"application/json": {
                         "schema": {"type": "object"}}}},
                     "responses": {"200": _json({"type": "object"}, "Stored; safe to forget"),
                                   "400": {"$ref": "#/components/responses/BadRequest"},
                                   "401": {"$ref": "#/components/responses/Unauthorized"},
                                   "404": {"$ref": "#/components/responses/NotFound"},
                                   "413": {"$ref": "#/components/responses/TooLarge"}}}},
        "/healthz": {"get": {"summary": "Liveness", "operationId": "healthz", "security": [],
                             "responses": {"200": _json({"type": "object"}, "Alive")}}},
        "/readyz": {"get": {"summary": "Readiness: storage, migrations, scheduler, worker",
                            "operationId": "readyz", "security": [],
                            "responses": {"200": _json({"type": "object"}, "Ready"),
                                          "503": _json({"type": "object"}, "Not ready")}}},
        "/metrics": {"get": {"summary": "Prometheus metrics", "operationId": "metrics",
                             "security": [],
                             "responses": {"200": {"description": "Prometheus text format",
                                                   "content": {"text/plain": {
                                                       "schema": {"type": "string"}}}}}}},
    }


_LINE = {"type": "object", "properties": {
    "line_id": {"type": "string"}, "sku": {"type": "string"}, "quantity": {"type": "integer"},
    "requested": {"type": "integer"}, "fulfilled": {"type": "integer"}}}
_NULLABLE = {"type": ["string", "null"]}
EVENT_DATA: dict[str, tuple[str, dict[str, Any]]] = {
    "fulfillment_order.created": ("An FO was created", {
        "fulfillment_order_id": {"type": "string"}, "channel": _NULLABLE,
        "order_number": _NULLABLE, "status": {"enum": list(FO_STATUSES)},
        "lines": {"type": "array", "items": _LINE}}),
    "fulfillment_order.status_changed": ("Exactly one per status change, with the per-line"
                                         " quantities after it", {
        "fulfillment_order_id": {"type": "string"}, "old_status": {"enum": list(FO_STATUSES)},
        "new_status": {"enum": list(FO_STATUSES)}, "lines": {"type": "array", "items": _LINE}}),
    "fulfillment_order.cancelled": ("An FO was cancelled", {
        "fulfillment_order_id": {"type": "string"}, "channel": _NULLABLE,
        "order_number": _NULLABLE, "lines": {"type": "array", "items": _LINE}}),
    "shipment.recorded": ("A shipment (or a new version of one) was stored", {
        "shipment_id": {"type": "string"}, "source": {"type": "string"},
        "external_id": {"type": "string"}, "status": {"enum": list(SHIPMENT_STATUSES)},
        "lines": {"type": "array", "items": _LINE},
        "tracking_numbers": {"type": "array", "items": {"type": "string"}},
        "carrier": _NULLABLE, "service": _NULLABLE, "shipped_at": _NULLABLE,
        "fulfillment_order_ids": {"type": "array", "items": {"type": "string"}}}),
    "shipment.unmatched": ("A shipment no rule could match; shipment.recorded's fields plus", {
        "shipment_id": {"type": "string"}, "reason": _NULLABLE,
        "candidates": {"type": "array", "items": {"type": "string"}}}),
    "order.pushed": ("An FO was placed with its OMS/3PL", {
        "fulfillment_order_id": {"type": "string"}, "connector": {"type": "string"},
        "order_number": _NULLABLE, "partner_order_id": _NULLABLE}),
    "order.push_failed": ("Placing an FO gave up; it is a dead letter", {
        "fulfillment_order_id": {"type": "string"}, "connector": {"type": "string"},
        "order_number": _NULLABLE, "error": {"type": "string"},
        "attempts": {"type": "integer"}}),
    "invoice.requested": ("Raise an invoice: at FO creation, or once per shipment allocated"
                          " to the FO (with that shipment's lines)", {
        "fulfillment_order_id": {"type": "string"}, "channel": {"type": "string"},
        "order_number": _NULLABLE, "shipment_id": _NULLABLE,
        "lines": {"type": "array", "items": _LINE}}),
    "fulfillment_order.source_changed": (
        "The partner order an FO came from changed its lines or address; the FO stays as it"
        " was (cancel and re-create it if the change must ship)", {
            "fulfillment_order_id": {"type": "string"}, "connector": {"type": "string"},
            "partner_order_id": {"type": "string"},
            "changes": {"type": "object", "description": "per changed field: {before, after}"}}),
    "partner_order.unclaimed": (
        "A partner order arrived for a connector no channel takes orders from; it is kept"
        " and listed, not dropped", {
            "connector": {"type": "string"}, "partner_order_id": {"type": "string"},
            "order_number": _NULLABLE}),
}


def _partner_paths() -> dict[str, Any]:
    """Partner records (kept generically per connector and kind), partner orders, unmatch."""
    params = [_id_param("name"), _id_param("kind")]
    one = [*params, _id_param()]
    record = _ref("PartnerRecord")
    queued = {"202": _json({"type": "object", "properties": {
        "id": {"type": "string", "description": "the outbox message, outbox-N"},
        "status": {"const": "pending"}, "operation": {"type": "string"}}},
        "Queued for the partner; the stored record changes when the partner confirms"),
        "501": _json(_ref("Error"), "The connector does not write this kind back"),
        **ERRORS, **NOT_FOUND}
    write_body = {"required": True, "content": {"application/json": {"schema": {
        "type": "object", "required": ["fields"], "additionalProperties": False,
        "properties": {"fields": {"type": "object"}}}}}}
    return {
        "/api/v1/connectors/{name}/records/{kind}": {
            "get": {"summary": "A connector's partner records of one kind, oldest change first",
                    "operationId": "listPartnerRecords", "parameters": [*params, *PAGING, {
                        "name": "updated_since", "in": "query",
                        "schema": {"type": "string", "format": "date-time"}}],
                    "responses": {"200": _json(_page_of("PartnerRecord"), "A page"),
                                  **ERRORS, **NOT_FOUND}},
            "post": {"summary": "Create a record at the partner", "parameters": params,
                     "operationId": "createPartnerRecord", "requestBody": write_body,
                     "responses": queued}},
        "/api/v1/connectors/{name}/records/{kind}/{id}": {
            "get": {"summary": "One partner record", "operationId": "getPartnerRecord",
                    "parameters": one,
                    "responses": {"200": _json(record, "The record"), **ERRORS, **NOT_FOUND}},
            "patch": {"summary": "Update a record at the partner", "parameters": one,
                      "operationId": "updatePartnerRecord", "requestBody": write_body,
                      "responses": queued}},
        "/api/v1/connectors/{name}/records/{kind}/{id}/archive": {
            "post": {"summary": "Archive a record at the partner", "parameters": one,
                     "operationId": "archivePartnerRecord", "responses": queued}},
        "/api/v1/partner-orders": {
            "get": {"summary": "Orders placed at partners and the FO each became;"
                               " unclaimed=true lists those no channel takes",
                    "operationId": "listPartnerOrders", "parameters": [*PAGING, {
                        "name": "connector", "in": "query", "schema": {"type": "string"}}, {
                        "name": "unclaimed", "in": "query",
                        "schema": {"enum": ["true", "false"]}}],
                    "responses": {"200": _json(_page_of("PartnerOrder"), "A page"), **ERRORS}}},
        "/api/v1/shipments/{id}/unmatch": {
            "post": {"summary": "Undo a manual match: the rules match it again, or it waits"
                               " in the unmatched queue", "operationId": "unmatchShipment",
                     "parameters": [_id_param()],
                     "responses": {"200": _json(_ref("Shipment"), "The shipment"),
                                   "409": {"$ref": "#/components/responses/Conflict"},
                                   **ERRORS, **NOT_FOUND}}},
    }


def _webhooks() -> dict[str, Any]:
    """The events subscribers receive, signed per Standard Webhooks."""
    headers = [{"name": name, "in": "header", "required": True, "schema": {"type": "string"},
                "description": text} for name, text in (
        ("webhook-id", "The event id; the same on every retry: drop repeats by it"),
        ("webhook-timestamp", "Unix seconds of this attempt"),
        ("webhook-signature", "v1,<base64 HMAC-SHA256 of id.timestamp.body>"))]
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
                               "data": {"type": "object", "properties": data}}}}}},
            "responses": {"200": {"description": "Any 2xx: received. 400, 401, 403, 404 and"
                                                 " 422 give up at once; others are retried"}}}}
    return hooks


def document() -> dict[str, Any]:
    def error(description: str) -> dict[str, Any]:
        return _json(_ref("Error"), description)

    return {
        "openapi": "3.1.0",
        "info": {"title": "Fulfillment gateway", "version": "1",
                 "description": "Fulfillment orders, reconciled shipments, connectors."},
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": _paths(),
        "webhooks": _webhooks(),
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": _schemas(),
            "responses": {
                "BadRequest": error("The request is invalid"),
                "Unauthorized": error("Missing or wrong credentials"),
                "NotFound": error("No such resource"),
                "Conflict": error("Contradicts what is stored"),
                "TooLarge": error("Body over the configured limit"),
                "PartnerError": error("The partner failed or rate limited us"),
            },
        },
    }
