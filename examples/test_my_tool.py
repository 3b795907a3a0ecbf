"""How a user tests their own tool against a ClusterIP with labnet's pytest plugin.

Run with: sudo .venv/bin/python -m pytest examples/test_my_tool.py
"""

import sys
from pathlib import Path

TOOL = str(Path(__file__).with_name("healthcheck.py"))


def test_healthcheck_through_a_cluster_ip(labnet_lab):
    lab = labnet_lab()  # the default lab: my-nginx behind a ClusterIP, and a client pod
    vip = lab.service_ip("my-nginx")
    result = lab.exec("client", [sys.executable, TOOL, f"http://{vip}/"])
    assert result.returncode == 0, result.stderr
    assert "ok" in result.stdout


def test_healthcheck_by_name_and_after_a_change(labnet_lab):
    lab = labnet_lab()
    assert lab.exec("client", [sys.executable, TOOL, "http://my-nginx/"]).returncode == 0
    lab.apply("""
apiVersion: v1
kind: Service
metadata: {name: nothing-behind}
spec:
  selector: {app: nobody}
  ports: [{port: 80}]
""")
    # a Service without endpoints refuses at once: the tool must fail, fast
    result = lab.exec("client", [sys.executable, TOOL, "http://nothing-behind/"])
    assert result.returncode != 0 and "Connection refused" in result.stderr
