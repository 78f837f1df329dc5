"""The OpenAPI document as frontends need it: exact error answers, a discriminated nextAction, exportable."""

from __future__ import annotations

import json
from typing import Any

import msgspec
from litestar import Litestar
from litestar.openapi.spec import (
    Discriminator,
    OpenAPI,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Reference,
    RequestBody,
    Schema,
)

from service.onboarding.actions import NextAction


def _action_tags() -> dict[str, str]:
    members = NextAction.__args__  # type: ignore[attr-defined]
    return {m.__struct_config__.tag: m.__name__ for m in members}  # type: ignore[attr-defined]


def finalize(doc: OpenAPI, request_bodies: dict[str, type] | None = None) -> OpenAPI:
    """Adjust Litestar's generated document in place.

    - Validation failures are answered 422 problem+json (see service.http.problems), so the generic 400 that
      Litestar documents for every handler with a body is removed: the document lists only what we send.
    - Every `nextAction` union gets a `discriminator` on `type`, so generated clients narrow by it.
    """
    for path_item in (doc.paths or {}).values():
        for method in ("get", "post", "put", "patch", "delete"):
            operation = getattr(path_item, method, None)
            if operation is not None and operation.responses:
                generic = operation.responses.get("400")
                if not (isinstance(generic, OpenAPIResponse) and "malformed_body" in generic.description):
                    operation.responses.pop("400", None)
    _metrics_as_text(doc)
    if request_bodies:
        _request_bodies(doc, request_bodies)
    tags = _action_tags()
    names = set(tags.values())
    mapping = {tag: f"#/components/schemas/{name}" for tag, name in tags.items()}
    schemas = doc.components.schemas or {} if doc.components else {}
    for name, schema in schemas.items():
        if name in _CLOSED_REQUESTS:
            schema.additional_properties = False  # unknown fields are refused (forbid_unknown_fields)
        if name in names or name in _ANSWER_SCHEMAS:
            # Answers always carry every field (defaults included), so clients need not treat any as optional.
            schema.required = sorted(schema.properties or {})
        for prop in (schema.properties or {}).values():
            if isinstance(prop, Schema) and prop.one_of and _refs(prop.one_of) == names:
                prop.discriminator = Discriminator(property_name="type", mapping=mapping)
    return doc


def _request_bodies(doc: OpenAPI, bodies: dict[str, type]) -> None:
    """Document the bodies the onboarding routes read themselves (after their step check, so Litestar does not
    decode them) from the same msgspec Structs the core decodes with: the document states the real rules."""
    _, components = msgspec.json.schema_components(
        sorted(set(bodies.values()), key=lambda t: t.__name__), ref_template="#/components/schemas/{name}"
    )
    if doc.components is None:  # pragma: no cover - Litestar always generates components here
        return
    schemas = doc.components.schemas = dict(doc.components.schemas or {})
    for name, schema in components.items():
        schemas[name] = _schema(schema)  # type: ignore[assignment]
    doc.components.schemas = dict(sorted(schemas.items()))
    for path_item in (doc.paths or {}).values():
        operation = path_item.post
        if operation is not None and operation.operation_id in bodies:
            ref = Reference(ref=f"#/components/schemas/{bodies[operation.operation_id].__name__}")
            operation.request_body = RequestBody(
                content={"application/json": OpenAPIMediaType(schema=ref)}, required=True
            )


_SCHEMA_FIELDS = {
    "title": "title",
    "description": "description",
    "examples": "examples",
    "maxLength": "max_length",
    "minLength": "min_length",
    "pattern": "pattern",
    "maxItems": "max_items",
    "minItems": "min_items",
    "required": "required",
    "additionalProperties": "additional_properties",
}


def _schema(raw: dict[str, Any]) -> Schema | Reference:
    """msgspec's JSON Schema for one type, as Litestar's OpenAPI objects (only the keywords request bodies use)."""
    if "$ref" in raw:
        return Reference(ref=raw["$ref"])
    fields: dict[str, Any] = {key: raw[name] for name, key in _SCHEMA_FIELDS.items() if name in raw}
    if "type" in raw:
        fields["type"] = OpenAPIType(raw["type"])
    if "properties" in raw:
        fields["properties"] = {k: _schema(v) for k, v in raw["properties"].items()}
    if "items" in raw:
        fields["items"] = _schema(raw["items"])
    return Schema(**fields)


def _metrics_as_text(doc: OpenAPI) -> None:
    """Prometheus' controller documents JSON; it answers its text exposition format."""
    item = (doc.paths or {}).get("/metrics")
    ok = item.get.responses.get("200") if item is not None and item.get and item.get.responses else None
    if isinstance(ok, OpenAPIResponse):
        ok.content = {"text/plain": OpenAPIMediaType(schema=Schema(type=OpenAPIType.STRING))}
        ok.description = "Prometheus text exposition format"


_CLOSED_REQUESTS = frozenset({"StartRequest", "CodeRequest", "SourceOfFundsRequest", "SofAnswerInput", "PhoneRequest"})
_ANSWER_SCHEMAS = frozenset(
    {"OnboardingState", "Progress", "CardView", "Problem", "Endpoint", "Question", "FieldError"}
)


def _refs(items: Any) -> set[str]:
    return {i.ref.rsplit("/", 1)[-1] for i in items if isinstance(i, Reference)}


def document(app: Litestar) -> dict[str, Any]:
    """The document as plain JSON values (defaults such as an Endpoint struct become objects)."""
    return msgspec.to_builtins(app.openapi_schema.to_schema())  # type: ignore[no-any-return]


def dumps(app: Litestar) -> str:
    return json.dumps(document(app), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
