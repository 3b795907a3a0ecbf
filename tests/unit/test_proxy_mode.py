"""`proxyMode:` in the lab file (kube-proxy's --proxy-mode), carried into the plan, and the
backend registry that serves it (pure: no root)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest

from labnet.errors import SpecError, SpecErrors
from labnet.input.labfile import parse_lab_text
from labnet.kubeproxy.modes import BACKENDS, backend_for
from labnet.model import DEFAULT_PROXY_MODE, PROXY_MODES
from labnet.plan import Plan, make_plan
from tests.manifests import deployment, lab_text, service

ROOT = Path(__file__).parent
WEB = (deployment(replicas=2), service())


def plan_of(text: str, previous: Plan | None = None) -> Plan:
    return make_plan(parse_lab_text(text, "lab.yaml", ROOT), previous)


def errors_of(text: str) -> list[str]:
    with pytest.raises((SpecError, SpecErrors)) as info:
        parse_lab_text(text, "lab.yaml", ROOT)
    exc = info.value
    return [e.line() for e in exc.errors] if isinstance(exc, SpecErrors) else [exc.line()]


def test_default_is_iptables():
    assert plan_of(lab_text(*WEB)).network.proxy_mode == "iptables" == DEFAULT_PROXY_MODE


@pytest.mark.parametrize("mode", PROXY_MODES)
def test_the_plan_carries_the_mode(mode):
    plan = plan_of(lab_text(*WEB, settings=f"proxyMode: {mode}\n"))
    assert plan.network.proxy_mode == mode
    again = Plan.from_json(plan.to_json())
    assert again.network.proxy_mode == mode


def test_an_older_plan_without_the_field_is_iptables():
    plan = plan_of(lab_text(*WEB, settings="proxyMode: nftables\n"))
    data = json.loads(plan.to_json())
    del data["network"]["proxy_mode"]
    assert Plan.from_json(json.dumps(data)).network.proxy_mode == "iptables"
    assert "proxy_mode" in asdict(plan.network)


@pytest.mark.parametrize("settings, expected", [
    ("proxyMode: ipvs\n",
     "lab.yaml:4: proxyMode 'ipvs' is not one of iptables, nftables (kube-proxy's --proxy-mode: "
     "iptables (the default) or nftables)"),
    ("proxyMode: NFTables\n", "lab.yaml:4: proxyMode 'NFTables' is not one of iptables, nftables"),
    ("proxyMode: [nftables]\n", "lab.yaml:4: the lab.proxyMode must be a string, not a list"),
    ("proxymode: nftables\n", "lab.yaml:4: unknown field 'proxymode' in the lab file"),
])
def test_bad_proxy_mode_is_one_line_with_its_place(settings, expected):
    errors = errors_of(lab_text(*WEB, settings=settings))
    assert len(errors) == 1 and errors[0].startswith(expected), errors


def test_every_mode_has_a_backend():
    assert set(BACKENDS) == set(PROXY_MODES)
    for mode in PROXY_MODES:
        assert backend_for(mode).mode == mode


def test_nftables_backend_syncs_full_then_partial_then_nothing():
    backend = backend_for("nftables")
    plan = plan_of(lab_text(*WEB, settings="proxyMode: nftables\n"))
    cache = backend.new_cache()
    rules = backend.render(plan, cache)["node1"]
    (full,), installed = backend.plan_sync(None, rules)
    assert full.full and full.text.startswith("add table ip kube-proxy\n"
                                              "delete table ip kube-proxy\n")
    assert full.text.endswith(rules.transaction_text(first=False))
    assert backend.plan_sync(installed, backend.render(plan, cache)["node1"])[0] == []
    scaled = plan_of(lab_text(deployment(replicas=3), service(),
                              settings="proxyMode: nftables\n"), plan)  # addresses kept
    (partial,), _ = backend.plan_sync(installed, backend.render(scaled, cache)["node1"])
    assert not partial.full and "delete table" not in partial.text
    assert 0 < partial.rules < full.rules
    assert all("default/web/" in line or line.startswith("add element")
               or line.startswith("delete element") for line in partial.text.splitlines())


def test_render_prints_the_mode_asked_for(tmp_path):
    from click.testing import CliRunner

    from labnet.cli import main

    path = tmp_path / "lab.yaml"
    path.write_text(lab_text(*WEB))
    out = CliRunner().invoke(main, ["render", "--proxy-mode", "nftables", str(path)])
    assert out.exit_code == 0, out.output
    assert "(nftables mode" in out.output and "add table ip kube-proxy" in out.output
    out = CliRunner().invoke(main, ["render", str(path)])
    assert out.exit_code == 0 and "*nat" in out.output and "(iptables mode" in out.output
    path.write_text(lab_text(*WEB, settings="proxyMode: nftables\n"))
    out = CliRunner().invoke(main, ["render", str(path)])
    assert "add chain ip kube-proxy services" in out.output
