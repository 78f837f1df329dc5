"""The Litestar edge: routes, authentication, problem answers, webhooks, middleware and the OpenAPI document."""
