"""The OpenAPI document as frontends need it: exact error answers, a discriminated nextAction, exportable."""

from __future__ import annotations

import json
from typing import Any

import msgspec
from litestar import Litestar
from litestar.enums import ParamType
from litestar.openapi.spec import (
    Discriminator,
    Example,
    OpenAPI,
    OpenAPIHeader,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Parameter,
    Reference,
    RequestBody,
    Schema,
)

from service.http.problems import CODES, PROBLEM_JSON, Problem
from service.onboarding import examples
from service.onboarding.actions import CardStatus, NextAction


def _action_tags() -> dict[str, str]:
    members = NextAction.__args__  # type: ignore[attr-defined]
    return {m.__struct_config__.tag: m.__name__ for m in members}  # type: ignore[attr-defined]


def finalize(doc: OpenAPI, request_bodies: dict[str, type] | None = None) -> OpenAPI:
    """Adjust Litestar's generated document in place, so that client generators get precise types.

    - Validation failures are answered 422 problem+json (see service.http.problems), so the generic 400 that
      Litestar documents for every handler with a body is removed: the document lists only what we send.
    - `NextAction` is one named component (a `oneOf` with a discriminator on `type`) that every answer refers to,
      so generated clients get one type to import and narrow.
    - `Problem.code` and `CardView.status` are closed enums; every response declares its headers and an example;
      every operation id is lowerCamelCase.
    """
    if request_bodies:
        _request_bodies(doc, request_bodies)
    schemas = doc.components.schemas if doc.components and doc.components.schemas is not None else {}
    if doc.components is not None:
        doc.components.headers = dict(_HEADERS)
    _name_next_action(schemas)
    _close_enums(schemas)
    for path, path_item in (doc.paths or {}).items():
        for method in ("get", "post", "put", "patch", "delete"):
            operation = getattr(path_item, method, None)
            if operation is None or not operation.responses:
                continue
            generic = operation.responses.get("400")
            if not (isinstance(generic, OpenAPIResponse) and "malformed_body" in generic.description):
                operation.responses.pop("400", None)
            operation.operation_id = _OPERATION_IDS.get(operation.operation_id or "", operation.operation_id)
            _answers(path, method.upper(), operation.responses)
            if (method.upper(), path) == _CONDITIONAL:
                # Read from the raw headers by the handler (not a Litestar parameter: no extra work on the hot path).
                operation.parameters = [*(operation.parameters or []), _IF_NONE_MATCH]
    _metrics_as_text(doc)
    for name, schema in schemas.items():
        if name in _CLOSED_REQUESTS:
            schema.additional_properties = False  # unknown fields are refused (forbid_unknown_fields)
        if name in _variant_names() or name in _ANSWER_SCHEMAS:
            # Answers always carry every field (defaults included), so clients need not treat any as optional.
            schema.required = sorted(schema.properties or {})
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


_OPERATION_IDS = {"MetricsGet": "metrics"}  # Prometheus' controller names its own operation


def _variant_names() -> set[str]:
    return set(_action_tags().values())


def _name_next_action(schemas: dict[str, Schema]) -> None:
    tags = _action_tags()
    names = set(tags.values())
    mapping = {tag: _ref(name) for tag, name in sorted(tags.items())}
    members = [Reference(ref=_ref(m.__name__)) for m in NextAction.__args__]  # type: ignore[attr-defined]
    schemas[NEXT_ACTION] = Schema(
        title=NEXT_ACTION,
        description="What the frontend does next; `type` tells the variants apart and `endpoint` names the call.",
        one_of=members,
        discriminator=Discriminator(property_name="type", mapping=mapping),
    )
    for schema in schemas.values():
        for key, prop in (schema.properties or {}).items():
            if isinstance(prop, Schema) and prop.one_of and _refs(prop.one_of) == names:
                schema.properties[key] = Reference(ref=_ref(NEXT_ACTION))  # type: ignore[index]


def _close_enums(schemas: dict[str, Schema]) -> None:
    problem = schemas["Problem"].properties or {}
    problem["code"] = Schema(
        type=OpenAPIType.STRING,
        enum=sorted(CODES),
        description="Stable machine-readable reason; new codes are added only with a new API version.",
    )
    card = schemas["CardView"].properties or {}
    card["status"] = Schema(
        type=OpenAPIType.STRING,
        enum=list(CardStatus.__args__),  # type: ignore[attr-defined]
        description="The card's status at the provider, lower-cased; a status the provider adds later is `unknown`.",
    )


def _ref(name: str) -> str:
    return f"#/components/schemas/{name}"


NEXT_ACTION = "NextAction"

_INT = Schema(type=OpenAPIType.INTEGER, minimum=0)
_HEADERS = {
    "X-Request-ID": OpenAPIHeader(
        schema=Schema(type=OpenAPIType.STRING),
        description="The request's id: the caller's X-Request-ID when it is sane, else a fresh one. Quote it to support.",
        required=True,
    ),
    "Retry-After": OpenAPIHeader(
        schema=_INT,
        description="Seconds to wait before calling again (also `nextAction.retryAfterSeconds`).",
        required=True,
    ),
    "RateLimit-Limit": OpenAPIHeader(schema=_INT, description="Requests allowed in the window (rate_limited only)."),
    "RateLimit-Remaining": OpenAPIHeader(schema=_INT, description="Requests left in the window (rate_limited only)."),
    "RateLimit-Reset": OpenAPIHeader(schema=_INT, description="Seconds until the window resets (rate_limited only)."),
    "ETag": OpenAPIHeader(
        schema=Schema(type=OpenAPIType.STRING),
        description="Validator of this answer: send it back as If-None-Match to get 304 while nothing changed.",
        required=True,
    ),
    "Cache-Control": OpenAPIHeader(
        schema=Schema(type=OpenAPIType.STRING, enum=["private, no-cache"]),
        description="Kept by this browser only, and revalidated before every use.",
        required=True,
    ),
}
_CONDITIONAL = ("GET", "/v1/card-onboarding")
_IF_NONE_MATCH = Parameter(
    name="If-None-Match",
    param_in=ParamType.HEADER,
    required=False,
    schema=Schema(type=OpenAPIType.STRING),
    description="The ETag of the state the client already has: answered 304 without a body while it is current.",
)
_REQUEST_ID_EXAMPLE = "4bf92f3577b34da6a3ce929d0e0e4736"


def _headers(*names: str) -> dict[str, OpenAPIHeader | Reference]:
    return {name: Reference(ref=f"#/components/headers/{name}") for name in names}


def _answers(path: str, method: str, responses: dict[str, OpenAPIResponse | Reference]) -> None:
    """Headers and examples of every answer of one operation, and the 304 of the conditional GET."""
    if (method, path) == _CONDITIONAL:
        responses["304"] = OpenAPIResponse(
            description="Not modified: the state is the one the If-None-Match named. No body.",
            headers=_headers("X-Request-ID", "ETag", "Cache-Control"),
        )
    for status, response in responses.items():
        if not isinstance(response, OpenAPIResponse):
            continue
        names = ["X-Request-ID"]
        is_problem = any(media == PROBLEM_JSON for media in response.content or {})
        if is_problem and status in ("429", "503", "504"):
            names.append("Retry-After")
        if status == "429":
            names += ["RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"]
        if status == "200" and (method, path) == _CONDITIONAL:
            names += ["ETag", "Cache-Control"]
        response.headers = {**(response.headers or {}), **_headers(*names)}
        for media_type, media in (response.content or {}).items():
            examples = _examples(path, method, int(status), media_type)
            if examples:
                media.examples = examples


def _examples(path: str, method: str, status: int, media_type: str) -> dict[str, Example]:
    if media_type == PROBLEM_JSON:
        webhook = path.startswith("/v1/webhooks")
        codes = [
            c
            for c, (s, _, _) in CODES.items()
            if s == status and (c.startswith("webhook") == webhook or c == "payload_too_large")
        ]
        return {code: Example(summary=code, value=_problem_example(code, method, path)) for code in codes}
    state = examples.SUCCESS.get((method, path))
    if state is not None and status == 200:
        return {state.next_action.__struct_config__.tag: Example(value=state)}  # type: ignore[dict-item]
    value = _OPS_EXAMPLES.get((path, status))
    return {"example": Example(value=value)} if value is not None else {}


def _problem_example(code: str, method: str, path: str) -> Problem:
    # Structs, not dicts: Litestar drops None from dicts in the document, and the answers' nulls are required.
    status, title, retryable = CODES[code]
    body = Problem(
        title=title,
        status=status,
        code=code,
        retryable=retryable,
        request_id=_REQUEST_ID_EXAMPLE,
        next_action=examples.problem_action(code, retryable, method, path),
    )
    return body


_OPS_EXAMPLES: dict[tuple[str, int], Any] = {
    ("/livez", 200): {"status": "ok"},
    ("/readyz", 200): {"status": "ready", "redis": "ok", "upstream": "ok"},
    ("/readyz", 503): {"status": "not_ready", "redis": "ok", "upstream": "ok"},
    ("/metrics", 200): "# HELP card_onboarding_requests_total Requests answered\n",
    ("/v1/webhooks/yativo", 200): {"status": "applied"},
}


def _metrics_as_text(doc: OpenAPI) -> None:
    """Prometheus' controller documents JSON; it answers its text exposition format."""
    item = (doc.paths or {}).get("/metrics")
    ok = item.get.responses.get("200") if item is not None and item.get and item.get.responses else None
    if isinstance(ok, OpenAPIResponse):
        example = {"example": Example(value=_OPS_EXAMPLES[("/metrics", 200)])}
        ok.content = {"text/plain": OpenAPIMediaType(schema=Schema(type=OpenAPIType.STRING), examples=example)}
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
