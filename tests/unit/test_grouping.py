"""Grouping of a DAG run's checks into one incident, and inhibition (core/grouping.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from airflow_mlobs.core.grouping import (
    DEFAULT_INHIBIT_RULES,
    InhibitRule,
    group_key,
    group_results,
    grouped_result,
    inhibit,
)
from airflow_mlobs.core.notify import AlertState, decide_notification
from airflow_mlobs.core.result import CheckResult, Finding, Status

DAY = datetime(2026, 3, 2, tzinfo=UTC)


def result(
    check: str, status: Status, *findings: tuple[str, str, Status], dataset: str = "wh:orders"
) -> CheckResult:
    return CheckResult(
        check,
        dataset,
        status,
        f"{check} {status.value}",
        window_end=DAY,
        findings=tuple(Finding(s, m, st) for s, m, st in findings),
    )


def incident(dataset: str = "wh:orders") -> list[CheckResult]:
    """A stale feed, a renamed column, two quality failures and a drift, all on one dataset."""
    return [
        result("freshness", Status.FAIL, ("orders", "lag_seconds", Status.FAIL), dataset=dataset),
        result(
            "schema",
            Status.FAIL,
            ("amount", "missing", Status.FAIL),
            ("amount_eur", "unexpected", Status.WARN),
            dataset=dataset,
        ),
        result(
            "quality",
            Status.FAIL,
            ("email", "null_fraction", Status.FAIL),
            ("id", "duplicates", Status.FAIL),
            dataset=dataset,
        ),
        result("drift", Status.FAIL, ("amount", "psi", Status.FAIL), dataset=dataset),
    ]


def test_default_rules_hold_back_drift_and_quality_behind_the_stale_feed() -> None:
    split = inhibit(incident())
    assert [r.check for r in split.kept] == ["freshness", "schema"]
    assert [(t.check, s.check) for t, s in split.inhibited] == [
        ("quality", "freshness"),
        ("drift", "freshness"),
    ]


def test_grouped_result_lists_each_breached_check_and_the_inhibited_ones() -> None:
    grouped = grouped_result(incident())
    assert grouped.check == "group" and grouped.dataset == "wh:orders"
    assert grouped.status is Status.FAIL
    subjects = [f.subject for f in grouped.findings]
    assert subjects == ["freshness: orders", "schema: amount", "schema: amount_eur"]
    assert "also failing, explained by the stale feed: quality, drift" in grouped.summary
    assert grouped.metrics["inhibited"] == [
        {"check": "quality", "dataset": "wh:orders", "by": "freshness"},
        {"check": "drift", "dataset": "wh:orders", "by": "freshness"},
    ]


def test_without_rules_every_breach_is_listed_worst_findings_first_and_capped() -> None:
    many = [
        result(
            "quality",
            Status.FAIL,
            *((f"c{i}", "nulls", Status.WARN) for i in range(5)),
            ("id", "dup", Status.FAIL),
        )
    ]
    grouped = grouped_result(many, rules=(), max_findings=3)
    assert [f.subject for f in grouped.findings] == ["quality: id", "quality: c0", "quality: c1"]


def test_inhibition_needs_the_same_dataset_and_a_failing_source() -> None:
    stale_other = result("freshness", Status.FAIL, ("x", "lag", Status.FAIL), dataset="wh:users")
    drift = result("drift", Status.FAIL, ("amount", "psi", Status.FAIL))
    assert inhibit([stale_other, drift]).inhibited == ()
    warn_only = result("freshness", Status.WARN, ("orders", "lag", Status.WARN))
    assert inhibit([warn_only, drift]).inhibited == ()
    # A source that passes inhibits nothing; a target that passes is not "also failing".
    ok_drift = result("drift", Status.PASS)
    assert (
        grouped_result([result("freshness", Status.FAIL, ("o", "lag", Status.FAIL)), ok_drift]).metrics[
            "inhibited"
        ]
        == []
    )


def test_the_named_source_follows_the_rule_order_not_the_result_order() -> None:
    reordered = [incident()[1], incident()[0], *incident()[2:]]
    assert [s.check for _, s in inhibit(reordered).inhibited] == ["freshness", "freshness"]


def test_rules_that_inhibit_each_other_keep_both() -> None:
    rules = (InhibitRule(("a",), ("b",)), InhibitRule(("b",), ("a",)))
    split = inhibit([result("a", Status.FAIL), result("b", Status.FAIL)], rules)
    assert len(split.kept) == 2 and split.inhibited == ()


SCHEMA_BY_COLUMN = (
    InhibitRule(("schema",), ("drift*", "quality*"), equal=("dataset", "column"), name="renamed column"),
)


def rename_incident() -> list[CheckResult]:
    """customer_age renamed to age: the schema check fails on customer_age; drift fails on
    customer_age (its column is gone) and, for its own reasons, warns on monthly_spend."""
    return [
        result("schema", Status.FAIL, ("customer_age", "missing", Status.FAIL)),
        result(
            "drift",
            Status.FAIL,
            ("customer_age", "missing", Status.FAIL),
            ("monthly_spend", "psi", Status.WARN),
            ("tenure", "psi", Status.PASS),
        ),
        result("quality", Status.FAIL, ("customer_age", "not_null", Status.ERROR)),
    ]


def test_column_rule_holds_back_only_the_findings_on_the_schema_columns() -> None:
    split = inhibit(rename_incident(), SCHEMA_BY_COLUMN)
    # quality breached only on customer_age: inhibited whole; drift kept with monthly_spend
    assert [(t.check, s.check) for t, s in split.inhibited] == [("quality", "schema")]
    assert [r.check for r in split.kept] == ["schema", "drift"]
    assert [(t.check, f.subject, s.check) for t, f, s in split.held] == [("drift", "customer_age", "schema")]
    grouped = grouped_result(rename_incident(), SCHEMA_BY_COLUMN)
    subjects = [f.subject for f in grouped.findings]
    assert "drift: monthly_spend" in subjects and "drift: customer_age" not in subjects
    assert "drift warn" in grouped.summary  # its status is the worst of what is left
    assert "explained by the schema change: quality, drift (customer_age)" in grouped.summary
    assert grouped.metrics["held_findings"] == [
        {
            "check": "drift",
            "dataset": "wh:orders",
            "subject": "customer_age",
            "metric": "missing",
            "by": "schema",
        }
    ]
    # without the column label the same rule holds back all of drift, monthly_spend included
    whole = (InhibitRule(("schema",), ("drift*", "quality*")),)
    assert [r.check for r in inhibit(rename_incident(), whole).kept] == ["schema"]


def test_column_rule_needs_the_source_to_breach_on_the_column() -> None:
    results = [
        result("schema", Status.FAIL, ("customer_age", "missing", Status.FAIL)),
        result("drift", Status.FAIL, ("monthly_spend", "psi", Status.FAIL)),
    ]
    split = inhibit(results, SCHEMA_BY_COLUMN)
    assert [r.check for r in split.kept] == ["schema", "drift"] and split.held == ()
    assert grouped_result(results, SCHEMA_BY_COLUMN).status == Status.FAIL


def test_rule_validation_names_the_problem() -> None:
    with pytest.raises(ValueError, match="must not be empty"):
        InhibitRule((), ("drift",))
    with pytest.raises(ValueError, match="equal may only name 'dataset', 'column'"):
        InhibitRule(("freshness",), ("drift",), equal=("model",))
    with pytest.raises(ValueError, match="group_by"):
        group_key(result("drift", Status.PASS), "r1", ("task",))  # type: ignore[arg-type]


def test_group_keys_per_run_and_dataset_or_per_run() -> None:
    results = incident("wh:orders") + incident("wh:users")
    assert list(group_results(results, "r1")) == ["run=r1|dataset=wh:orders", "run=r1|dataset=wh:users"]
    per_run = group_results(results, "r1", ("run",))
    assert list(per_run) == ["run=r1"] and len(per_run["run=r1"]) == 8
    grouped = grouped_result(per_run["run=r1"])
    assert grouped.dataset == "*"
    assert grouped.findings[0].subject == "freshness (wh:orders): orders"


def test_empty_group_is_a_pass_with_a_reason() -> None:
    grouped = grouped_result([])
    assert grouped.status is Status.PASS and "no check results" in grouped.summary


def test_one_alert_state_per_group_dedups_the_next_day_and_recovers_once() -> None:
    state = AlertState()
    day1 = decide_notification(state, grouped_result(incident()), now=DAY)
    assert day1.kind == "alert"
    day2 = decide_notification(day1.state, grouped_result(incident()), now=DAY + timedelta(hours=23))
    assert day2.kind is None and "already sent" in day2.reason
    # The stale feed recovers but the column stays renamed: quality and drift are now explained by
    # the schema change; the breach changed (freshness left it), so one new alert.
    day3_results = [result("freshness", Status.PASS), *incident()[1:]]
    day3_group = grouped_result(day3_results)
    assert "explained by the schema change: quality, drift" in day3_group.summary
    day3 = decide_notification(day2.state, day3_group, now=DAY + timedelta(days=2))
    assert day3.kind == "alert"
    all_pass = [result(c, Status.PASS) for c in ("freshness", "schema", "quality", "drift")]
    day4 = decide_notification(day3.state, grouped_result(all_pass), now=DAY + timedelta(days=3))
    assert day4.kind == "recovery"
    day5 = decide_notification(day4.state, grouped_result(all_pass), now=DAY + timedelta(days=4))
    assert day5.kind is None


def test_default_rules_are_the_documented_ones() -> None:
    (rule,) = DEFAULT_INHIBIT_RULES
    assert rule.source_checks == ("freshness", "schema")
    assert rule.target_checks == ("drift*", "quality*", "performance*")


def test_grouped_reports_link_the_breached_checks_not_the_inhibited() -> None:
    from airflow_mlobs.notifiers.base import member_reports
    from airflow_mlobs.operators.alerts import with_reports
    from airflow_mlobs.render.message import Links
    from airflow_mlobs.store import RunKey

    members = incident()
    runs = [
        RunKey("d", task, "r1", index)
        for task, index in (("fresh", -1), ("schema", -1), ("q", 2), ("drift", -1))
    ]
    grouped = with_reports(grouped_result(members), list(zip(members, runs, strict=True)))
    labels = [r["label"] for r in grouped.metrics["reports"]]
    assert labels == ["freshness (fresh)", "schema"]  # quality and drift held back by the stale feed
    links = member_reports(grouped)
    assert [label for label, _ in links] == ["freshness (fresh) report", "schema report"]
    assert "task_id=fresh" in links[0][1] and "run_id=r1" in links[0][1]
    unheld = with_reports(grouped_result(members, ()), list(zip(members, runs, strict=True)))
    assert [r["label"] for r in unheld.metrics["reports"]][2:] == ["quality (q[2])", "drift"]
    assert Links("log", "rep", extra=member_reports(unheld)).labelled()[:3] == [
        ("Task log", "log"),
        ("Report", "rep"),
        ("freshness (fresh) report", unheld.metrics["reports"][0]["url"]),
    ]
    assert member_reports(members[0]) == ()


def test_silenced_checks_still_inhibit_but_are_not_listed() -> None:
    members = incident()
    fresh, schema = members[0], members[1]
    grouped = grouped_result(members, silenced={id(fresh): "silence #1 by ana until ...: feed fix"})
    # freshness silenced: schema is still sent; quality and drift stay explained by the stale feed
    assert grouped.status == Status.FAIL and not grouped.metrics["silenced_only"]
    assert grouped.metrics["breached"] == ["schema"]
    assert [s["check"] for s in grouped.metrics["silenced"]] == ["freshness"]
    assert all(f.subject.startswith("schema: ") for f in grouped.findings)
    assert "silenced: freshness (silence #1 by ana until ...: feed fix)" in grouped.summary
    assert [i["check"] for i in grouped.metrics["inhibited"]] == ["quality", "drift"]
    # everything silenced: the breach is kept (no recovery) and marked silenced_only
    both = grouped_result(members, silenced={id(fresh): "s1", id(schema): "s2"})
    assert both.status == Status.FAIL and both.metrics["silenced_only"]
    assert {f.subject.split(":")[0] for f in both.findings} == {"freshness", "schema"}


def test_a_notifier_holds_back_a_group_whose_every_breach_is_silenced(tmp_path: Any) -> None:
    import sqlalchemy as sa

    from airflow_mlobs.notifiers import SlackWebhookNotifier
    from airflow_mlobs.store import ResultsStore

    engine = sa.create_engine(f"sqlite:///{tmp_path / 'r.db'}")
    members = incident()
    grouped = grouped_result(
        members, silenced={id(members[0]): "silence #1 by ana", id(members[1]): "silence #2 by bo"}
    )
    reason = SlackWebhookNotifier(slack_webhook_conn_id="unused").held_back(
        grouped, "alert", ResultsStore(engine)
    )
    assert reason == "freshness: silence #1 by ana; schema: silence #2 by bo"
    engine.dispose()
