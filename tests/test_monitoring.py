"""The alert rules and the Grafana dashboard in deploy/monitoring, checked offline: their structure, every PromQL
expression parses, and every metric they name is one the service exports."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import promql_parser
import pytest
import yaml
from prometheus_client import REGISTRY

import service.ops.metrics  # noqa: F401 - registers the service's metrics
from tests.conftest import ROOT

MONITORING = ROOT / "deploy" / "monitoring"
RULES = MONITORING / "alerts.yaml"
DASHBOARD = MONITORING / "dashboard.json"
# Grafana fills these in before the query reaches Prometheus.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$job": ".*"}
# The alerts the issue asks for, by what they watch.
EXPECTED_ALERTS = {
    "CardOnboardingCircuitOpen": "card_onboarding_circuit_state",
    "CardOnboardingServerErrors": "card_onboarding_requests_total",
    "CardOnboardingSlowAnswers": "card_onboarding_request_duration_seconds_bucket",
    "CardOnboardingRedisErrors": "card_onboarding_state_cache_total",
    "CardOnboardingUpstreamRateLimited": "card_onboarding_upstream_calls_total",
}
SAMPLE_SUFFIXES = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count")}


def exported() -> set[str]:
    """The series names the service exports, from its prometheus_client registry (histogram suffixes included)."""
    names = set()
    for family in REGISTRY.collect():
        if family.name.startswith("card_onboarding_"):
            names.update(family.name + suffix for suffix in SAMPLE_SUFFIXES.get(family.type, ("",)))
    return names


def metric_names(expr: str) -> set[str]:
    found: set[str] = set()

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            found.add(node.name)

    promql_parser.walk(promql_parser.parse(expr), visit)
    return found


def rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(RULES.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def dashboard_exprs() -> Iterator[tuple[str, str]]:
    document = json.loads(DASHBOARD.read_text())
    for panel in document["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for variable, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(variable, value)
            yield panel["title"], expr


def test_the_service_exports_the_metrics_the_operators_are_promised() -> None:
    assert {
        "card_onboarding_circuit_state",
        "card_onboarding_circuit_refusals_total",
        "card_onboarding_degraded_answers_total",
        "card_onboarding_request_duration_seconds_bucket",
    } <= exported()


def test_the_rules_file_is_prometheus_rule_groups_with_the_expected_alerts() -> None:
    document = yaml.safe_load(RULES.read_text())
    assert set(document) == {"groups"}
    for group in document["groups"]:
        assert set(group) <= {"name", "interval", "rules", "labels", "limit"} and group["name"] and group["rules"]
        for rule in group["rules"]:
            assert set(rule) <= {"alert", "expr", "for", "keep_firing_for", "labels", "annotations"}, rule
            assert isinstance(rule["expr"], str)
            assert rule["labels"]["severity"] in ("page", "ticket")
            assert rule["annotations"]["summary"] and rule["annotations"]["description"]
            promql_parser.parse_duration(rule["for"])
    alerts = [rule["alert"] for rule in rules()]
    assert len(alerts) == len(set(alerts))
    for alert, metric in EXPECTED_ALERTS.items():
        (rule,) = [r for r in rules() if r["alert"] == alert]
        assert metric in metric_names(rule["expr"])


@pytest.mark.parametrize("rule", rules(), ids=lambda r: r["alert"])
def test_every_alert_expression_parses_and_names_only_exported_metrics(rule: dict[str, Any]) -> None:
    names = metric_names(rule["expr"])  # raises on a PromQL syntax error
    assert names and names <= exported(), names - exported()


def test_a_broken_expression_would_be_caught() -> None:
    with pytest.raises(ValueError):
        promql_parser.parse("sum(rate(card_onboarding_requests_total[5m])")
    assert metric_names("rate(card_onboarding_nothing_total[5m])") - exported() == {"card_onboarding_nothing_total"}


def test_the_dashboard_is_grafana_json_with_unique_panel_ids_on_a_chosen_datasource() -> None:
    document = json.loads(DASHBOARD.read_text())
    assert document["uid"] and document["title"] and document["schemaVersion"] >= 36
    ids = [panel["id"] for panel in document["panels"]]
    assert len(ids) == len(set(ids))
    variables = {v["name"]: v for v in document["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    for panel in document["panels"]:
        assert {"h", "w", "x", "y"} <= set(panel["gridPos"])
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}" and panel["targets"], panel["title"]


@pytest.mark.parametrize(("title", "expr"), list(dashboard_exprs()), ids=[t for t, _ in dashboard_exprs()])
def test_every_dashboard_query_parses_and_names_only_exported_metrics(title: str, expr: str) -> None:
    assert "$" not in expr, f"{title}: a Grafana variable the test does not know"
    names = metric_names(expr)
    assert names and names <= exported(), names - exported()


def test_the_dashboards_variables_query_an_exported_metric() -> None:
    document = json.loads(DASHBOARD.read_text())
    for variable in document["templating"]["list"]:
        if variable["type"] == "query":
            (metric,) = re.findall(r"label_values\(([a-z_:]+),", variable["definition"])
            assert metric in exported()
