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
    Schema,
)

from service.onboarding.actions import NextAction


def _action_tags() -> dict[str, str]:
    members = NextAction.__args__  # type: ignore[attr-defined]
    return {m.__struct_config__.tag: m.__name__ for m in members}  # type: ignore[attr-defined]


def finalize(doc: OpenAPI) -> OpenAPI:
    """Adjust Litestar's generated document in place.

    - Validation failures are answered 422 problem+json (see service.http.problems), so the generic 400 that
      Litestar documents for every handler with a body is removed: the document lists only what we send.
    - Every `nextAction` union gets a `discriminator` on `type`, so generated clients narrow by it.
    """
    for path_item in (doc.paths or {}).values():
        for method in ("get", "post", "put", "patch", "delete"):
            operation = getattr(path_item, method, None)
            if operation is not None and operation.responses:
                operation.responses.pop("400", None)
    _metrics_as_text(doc)
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
