"""Metrics, scraped over HTTP and parsed the way Prometheus would."""

from __future__ import annotations

import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from failoverd import __version__
from failoverd.config import MetricsConfig
from failoverd.observe.endpoints import StatusServer
from failoverd.observe.metrics import ROLES, Metrics


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def scrape(m: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """GET /metrics as the daemon serves it (failoverd.observe.endpoints, on metrics.listen)."""
    server = StatusServer(MetricsConfig(host="127.0.0.1", port=0), m.render, 10.0)
    server.start()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=5) as r:
            return samples(r.read().decode())
    finally:
        server.close()


@pytest.fixture
def served() -> Metrics:
    return Metrics(MetricsConfig(host="127.0.0.1", port=0), node="mail1", cluster="mail-east")


def role_values(s: dict) -> dict[str, float]:
    return {dict(labels)["role"]: v for (name, labels), v in s.items() if name == "failoverd_role"}


def test_scrape_shows_exactly_one_current_role(served):
    served.set_role("active")
    roles = role_values(scrape(served))
    assert set(roles) == set(ROLES)
    assert [r for r, v in roles.items() if v == 1] == ["active"]
    assert sum(roles.values()) == 1

    served.set_role("demoting")
    roles = role_values(scrape(served))
    assert [r for r, v in roles.items() if v == 1] == ["demoting"]


def test_new_metrics_start_in_init():
    m = Metrics(None, "mail1", "mail-east")
    roles = role_values(samples(m.render().decode()))
    assert [r for r, v in roles.items() if v == 1] == ["init"]


def test_scrape_shows_epoch_counters_and_fence_histogram(served):
    served.set_epoch(7)
    served.transition("takeover")
    served.transition("lease_lost")
    served.transition("lease_lost")
    served.fence_finished("ssh", True, 0.3)
    served.fence_finished("ssh", False, 5.0)
    served.fence_finished("command", True, 12.0)
    for _ in range(3):
        served.zk_request()
    served.set_lease_remaining(1.5)
    served.set_maintenance(True)

    s = scrape(served)
    assert s[("failoverd_epoch", ())] == 7
    assert s[("failoverd_transitions_total", (("reason", "takeover"),))] == 1
    assert s[("failoverd_transitions_total", (("reason", "lease_lost"),))] == 2
    ok_ssh = (("method", "ssh"), ("result", "ok"))
    assert s[("failoverd_fence_seconds_count", ok_ssh)] == 1
    assert s[("failoverd_fence_seconds_sum", ok_ssh)] == pytest.approx(0.3)
    assert s[("failoverd_fence_seconds_bucket", (("le", "0.25"), *ok_ssh))] == 0
    assert s[("failoverd_fence_seconds_bucket", (("le", "0.5"), *ok_ssh))] == 1
    assert s[("failoverd_fence_seconds_count", (("method", "ssh"), ("result", "failed")))] == 1
    assert s[("failoverd_fence_seconds_count", (("method", "command"), ("result", "ok")))] == 1
    assert s[("failoverd_zookeeper_requests_total", ())] == 3
    assert s[("failoverd_lease_remaining_seconds", ())] == 1.5
    assert s[("failoverd_maintenance", ())] == 1


def test_epoch_unknown_and_lease_lost_read_zero():
    m = Metrics(None, "mail1", "mail-east")
    m.set_epoch(None)
    m.set_lease_remaining(-0.2)
    s = samples(m.render().decode())
    assert s[("failoverd_epoch", ())] == 0
    assert s[("failoverd_lease_remaining_seconds", ())] == 0


def test_health_checks_and_overall_health():
    m = Metrics(None, "mail1", "mail-east")
    m.set_health("smtp", True, 0.02)
    m.set_health("imap", False, 2.0)
    m.set_healthy(False)
    s = samples(m.render().decode())
    assert s[("failoverd_health_check_up", (("check", "smtp"),))] == 1
    assert s[("failoverd_health_check_up", (("check", "imap"),))] == 0
    assert s[("failoverd_health_check_seconds", (("check", "imap"),))] == 2.0
    assert s[("failoverd_healthy", ())] == 0


def test_free_text_reasons_are_counted_as_other():
    m = Metrics(None, "mail1", "mail-east")
    m.transition("demoting self because DCS is not accessible")
    m.transition("fence_failed")
    s = samples(m.render().decode())
    assert s[("failoverd_transitions_total", (("reason", "other"),))] == 1
    assert s[("failoverd_transitions_total", (("reason", "fence_failed"),))] == 1


def test_info_names_node_cluster_and_version():
    m = Metrics(None, "mail1", "mail-east")
    s = samples(m.render().decode())
    key = (("cluster", "mail-east"), ("node", "mail1"), ("version", __version__))
    assert s[("failoverd_info", key)] == 1


def test_two_instances_in_one_process_do_not_clash():
    a = Metrics(None, "mail1", "c")
    b = Metrics(None, "mail2", "c")
    a.set_epoch(3)
    b.set_epoch(4)
    assert samples(a.render().decode())[("failoverd_epoch", ())] == 3
    assert samples(b.render().decode())[("failoverd_epoch", ())] == 4


def test_without_metrics_listen_nothing_is_served():
    server = StatusServer(None, Metrics(None, "mail1", "mail-east").render, 10.0)
    server.start()
    assert server.port is None
