"""`labnet get`'s output for the hand-built lab of test_kubectl_objects, written out as kubectl
prints it: the columns and cells of kubernetes' printers.go, aligned by kubectl's tabwriter
(minimum width 6, padding 3, the last column unpadded), JSON with 4 spaces and sorted keys,
YAML as sigs.k8s.io/yaml writes it, `kind/name`, JSONPath and custom-columns. (Where kubectl is
installed, test_kubectl_vs_kubectl.py also runs the real one against the same objects.)"""

from __future__ import annotations

import datetime as dt
import json

import pytest

from labnet.kubectl import GetRequest, KubectlError
from labnet.kubectl.printers import align, human_duration, parse_output, print_yaml
from tests.unit.test_kubectl_objects import hand_cluster

NOW = dt.datetime(2024, 5, 1, 13, 0, 0, tzinfo=dt.UTC)  # an hour after the lab was made


def get(*args: str, **kw):
    return hand_cluster().get(GetRequest(args, **kw), NOW)


def out(*args: str, **kw) -> str:
    result = get(*args, **kw)
    assert result.exit_code == 0, result.stderr
    return result.stdout


def test_pods():
    assert out("pods") == (
        "NAME                  READY   STATUS             RESTARTS   AGE\n"
        "client                1/1     Running            0          60m\n"
        "web-5d8f7c9b4-abcde   1/1     Running            0          60m\n"
        "web-5d8f7c9b4-fghij   0/1     Running            0          60m\n"
        "worker                0/1     CrashLoopBackOff   3          60m\n")


def test_pods_wide_in_every_namespace():
    assert out("po", output="wide", all_namespaces=True) == (
        "NAMESPACE     NAME                       READY   STATUS             RESTARTS   AGE   "
        "IP           NODE    NOMINATED NODE   READINESS GATES\n"
        "default       client                     1/1     Running            0          60m   "
        "172.16.1.2   node1   <none>           <none>\n"
        "default       web-5d8f7c9b4-abcde        1/1     Running            0          60m   "
        "172.16.1.3   node1   <none>           <none>\n"
        "default       web-5d8f7c9b4-fghij        0/1     Running            0          60m   "
        "172.16.2.2   node2   <none>           <none>\n"
        "default       worker                     0/1     CrashLoopBackOff   3          60m   "
        "172.16.2.3   node2   <none>           <none>\n"
        "kube-system   coredns-7db6d8ff4d-x2x9v   1/1     Running            0          60m   "
        "172.16.2.4   node2   <none>           <none>\n")


def test_services_wide():
    assert out("svc", output="wide") == (
        "NAME           TYPE           CLUSTER-IP    EXTERNAL-IP      PORT(S)        AGE   SELECTOR\n"
        "db             ExternalName   <none>        db.example.com   <none>         60m   <none>\n"
        "legacy         ClusterIP      172.19.0.23   198.51.100.7     5432/TCP       60m   <none>\n"
        "web            ClusterIP      172.19.0.20   <none>           80/TCP         60m   app=web\n"
        "web-headless   ClusterIP      None          <none>           80/TCP         60m   app=web\n"
        "web-lb         LoadBalancer   172.19.0.22   203.0.113.10     80:31000/TCP   60m   app=web\n"
        "web-np         NodePort       172.19.0.21   <none>           80:30080/TCP   60m   app=web\n")


def test_endpoints_list_ready_addresses_only():
    assert out("ep", "web", "kube-dns", namespace="kube-system", ignore_not_found=True) == (
        "NAME       ENDPOINTS                                     AGE\n"
        "kube-dns   172.16.2.4:53,172.16.2.4:53,172.16.2.4:9153   60m\n")
    assert out("endpoints", "web") == (
        "NAME   ENDPOINTS       AGE\n"
        "web    172.16.1.3:80   60m\n")


def test_endpointslices():
    text = out("endpointslices", "-", show_labels=False, ignore_not_found=True)
    assert text == ""  # no slice is called "-"
    lines = out("endpointslices").splitlines()
    assert lines[0].split() == ["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"]
    rows = {line.split()[0]: line.split()[1:] for line in lines[1:]}
    assert rows["legacy-1"] == ["IPv4", "5432", "192.0.2.10", "60m"]
    web = next(v for k, v in rows.items() if k.startswith("web-") and v[1] == "80"
               and v[2] == "172.16.1.3,172.16.2.2")
    assert web == ["IPv4", "80", "172.16.1.3,172.16.2.2", "60m"]


def test_nodes_wide():
    assert out("nodes", output="wide") == (
        "NAME    STATUS     ROLES           AGE   VERSION   INTERNAL-IP      EXTERNAL-IP   "
        "OS-IMAGE                         KERNEL-VERSION   CONTAINER-RUNTIME\n"
        "node1   Ready      <none>          60m             192.168.255.11   <none>        "
        "Debian GNU/Linux 12 (bookworm)   6.1.0-18-amd64   <unknown>\n"
        "node2   NotReady   control-plane   60m             192.168.255.12   <none>        "
        "Debian GNU/Linux 12 (bookworm)   6.1.0-18-amd64   <unknown>\n")


def test_namespaces_with_labels():
    assert out("ns", "team-a", "default", show_labels=True) == (
        "NAME      STATUS   AGE   LABELS\n"
        "team-a    Active   60m   kubernetes.io/metadata.name=team-a,team=a\n"
        "default   Active   60m   kubernetes.io/metadata.name=default\n")


def test_several_types_print_one_table_each_with_kind_names():
    assert out("pods,svc", namespace="kube-system") == (
        "NAME                           READY   STATUS    RESTARTS   AGE\n"
        "pod/coredns-7db6d8ff4d-x2x9v   1/1     Running   0          60m\n"
        "\n"
        "NAME               TYPE        CLUSTER-IP    EXTERNAL-IP   PORT(S)                  AGE\n"
        "service/kube-dns   ClusterIP   172.19.0.10   <none>        53/UDP,53/TCP,9153/TCP   60m\n")
    # kinds are named only when objects of several kinds were found (as kubectl decides)
    assert out("pods,svc", selector="app=web").splitlines()[1].startswith("web-5d8f7c9b4-abcde")


def test_no_headers():
    assert out("ns", "default", no_headers=True) == "default   Active   60m\n"


def test_names():
    assert out("pods,svc,endpointslices", output="name", selector="app=client,!nothing") == \
        "pod/client\n"
    assert out("endpointslice", "legacy-1", output="name") == \
        "endpointslice.discovery.k8s.io/legacy-1\n"
    assert out("nodes", output="name") == "node/node1\nnode/node2\n"
    assert out("ns", "team-a", output="name") == "namespace/team-a\n"
    assert out("svc", "web", output="name") == "service/web\n"


def test_json_of_one_object_and_of_a_list():
    one = out("ns", "team-a", output="json")
    assert one == (
        '{\n'
        '    "apiVersion": "v1",\n'
        '    "kind": "Namespace",\n'
        '    "metadata": {\n'
        '        "creationTimestamp": "2024-05-01T12:00:00Z",\n'
        '        "labels": {\n'
        '            "kubernetes.io/metadata.name": "team-a",\n'
        '            "team": "a"\n'
        '        },\n'
        '        "name": "team-a",\n'
        f'        "uid": "{json.loads(one)["metadata"]["uid"]}"\n'
        '    },\n'
        '    "spec": {\n'
        '        "finalizers": [\n'
        '            "kubernetes"\n'
        '        ]\n'
        '    },\n'
        '    "status": {\n'
        '        "phase": "Active"\n'
        '    }\n'
        '}\n')
    listed = json.loads(out("ns", output="json"))
    assert list(listed) == ["apiVersion", "items", "kind", "metadata"]
    assert (listed["apiVersion"], listed["kind"], listed["metadata"]) == \
        ("v1", "List", {"resourceVersion": ""})
    assert [i["metadata"]["name"] for i in listed["items"]] == [
        "default", "kube-node-lease", "kube-public", "kube-system", "team-a"]
    # two names: a List, even of one found object
    assert json.loads(out("ns", "team-a", "default", output="json"))["kind"] == "List"
    assert json.loads(out("ns", output="json", selector="nothing"))["items"] == []


def test_json_escapes_as_go_does():
    assert out("pods", "worker", output="jsonpath={.status.conditions[1].message}") == \
        "containers with unready status: [loop]"
    text = out("pods", "worker", output="json")
    assert '"reason": "CrashLoopBackOff"' in text
    from labnet.kubectl.printers import print_json
    assert print_json({"a": "<none> & é"}) == '{\n    "a": "\\u003cnone\\u003e \\u0026 é"\n}\n'


def test_yaml():
    assert out("ns", "team-a", output="yaml") == (
        "apiVersion: v1\n"
        "kind: Namespace\n"
        "metadata:\n"
        '  creationTimestamp: "2024-05-01T12:00:00Z"\n'
        "  labels:\n"
        "    kubernetes.io/metadata.name: team-a\n"
        "    team: a\n"
        "  name: team-a\n"
        f"  uid: {hand_cluster().list('ns')[-1]['metadata']['uid']}\n"
        "spec:\n"
        "  finalizers:\n"
        "  - kubernetes\n"
        "status:\n"
        "  phase: Active\n")


def test_yaml_quotes_as_go_yaml_does():
    assert print_yaml({"a": "80", "b": "y", "c": "true", "d": "", "e": "a: b", "f": "None",
                       "g": "x\ny", "h": None, "i": 80, "j": [{"k": "v"}]}) == (
        'a: "80"\n'
        'b: "y"\n'
        'c: "true"\n'
        'd: ""\n'
        "e: 'a: b'\n"
        "f: None\n"
        "g: |-\n"
        "  x\n"
        "  y\n"
        "h: null\n"
        "i: 80\n"
        "j:\n"
        "- k: v\n")


def test_jsonpath():
    assert out("pods", output="jsonpath={.items[*].metadata.name}") == \
        "client web-5d8f7c9b4-abcde web-5d8f7c9b4-fghij worker"
    assert out("svc", "web", output="jsonpath={.spec.clusterIP}") == "172.19.19.20".replace(
        "19.19", "19.0")
    assert out("pods", output='jsonpath={range .items[*]}{.metadata.name}{"\\t"}'
               '{.status.podIP}{"\\n"}{end}', selector="app=web") == (
        "web-5d8f7c9b4-abcde\t172.16.1.3\nweb-5d8f7c9b4-fghij\t172.16.2.2\n")
    assert out("pods", output="jsonpath={.items[-1:].metadata.name}") == "worker"
    assert out("pods", output='jsonpath={.items[?(@.spec.nodeName=="node2")].metadata.name}') \
        == "web-5d8f7c9b4-fghij worker"
    assert out("svc", "web-lb", output="jsonpath={.status.loadBalancer.ingress[0].ip}") == \
        "203.0.113.10"
    assert out("nodes", output='jsonpath={.items[*].status.addresses[?(@.type=="InternalIP")]'
               '.address}') == "192.168.255.11 192.168.255.12"
    assert out("pods", "client", output="jsonpath={..image}") == "busybox busybox"
    assert out("pods", "client", output="jsonpath={.nope}") == ""
    assert out("pods", "client", output="jsonpath-as-json={.metadata.name}") == \
        '[\n    "client"\n]\n'


def test_custom_columns():
    assert out("pods", output="custom-columns=NAME:.metadata.name,IP:.status.podIP,"
               "PORTS:.spec.containers[*].ports[*].containerPort,GATES:.spec.readinessGates",
               selector="app in (web, client)") == (
        "NAME                  IP           PORTS    GATES\n"
        "client                172.16.1.2   <none>   <none>\n"
        "web-5d8f7c9b4-abcde   172.16.1.3   80       <none>\n"
        "web-5d8f7c9b4-fghij   172.16.2.2   80       <none>\n")
    assert out("svc", "web", output="custom-columns=SELECTOR:spec.selector,"
               "PORTS:{.spec.ports}") == (
        "SELECTOR       PORTS\n"
        "map[app:web]   [map[name:http port:80 protocol:TCP targetPort:http]]\n")


def test_errors_are_kubectls():
    cases = [
        (("pod", "nosuch"), {}, 'Error from server (NotFound): pods "nosuch" not found'),
        (("endpointslices", "x"), {},
         'Error from server (NotFound): endpointslices.discovery.k8s.io "x" not found'),
        (("nodes", "node9"), {}, 'Error from server (NotFound): nodes "node9" not found'),
        (("deployments",), {}, 'error: the server doesn\'t have a resource type "deployments"'),
        (("pods", "client"), {"selector": "app=client"},
         "error: name cannot be provided when a selector is specified"),
        (("pods", "client"), {"all_namespaces": True},
         "error: a resource cannot be retrieved by name across all namespaces"),
        (("pods",), {"output": "table"}, 'error: unable to match a printer suitable for the '
         'output format "table", allowed formats are: custom-columns,json,jsonpath,'
         'jsonpath-as-json,name,wide,yaml'),
        (("pods",), {"output": "jsonpath="},
         "error: template format specified but no template given"),
        (("pods",), {"output": "jsonpath={.items"},
         "error: error parsing jsonpath {.items, unclosed action"),
        (("pods",), {"output": "custom-columns=NAME"}, "error: unexpected custom-columns spec: "
         "NAME, expected <header>:<json-path-expr>"),
        (("pods",), {"selector": "app in x"},
         'Error from server (BadRequest): Unable to find "/v1, Resource=pods" that match label '
         'selector "app in x", field selector "": unable to parse requirement: found \'x\' '
         "expected: '('"),
        (("endpointslices",), {"field_selector": "spec.x=y"},
         'Error from server (BadRequest): Unable to find "discovery.k8s.io/v1, '
         'Resource=endpointslices" that match label selector "", field selector "spec.x=y": '
         "field label not supported: spec.x"),
    ]
    for args, kw, message in cases:
        result = get(*args, **kw)
        assert (result.stdout, result.stderr, result.exit_code) == ("", message + "\n", 1), args


def test_some_names_found_some_not():
    result = get("pods", "client", "nosuch", output="name")
    assert (result.stdout, result.stderr, result.exit_code) == (
        "pod/client\n", 'Error from server (NotFound): pods "nosuch" not found\n', 1)


def test_nothing_found_says_so_on_stderr():
    result = get("pods", namespace="kube-public")
    assert (result.stdout, result.stderr, result.exit_code) == (
        "", "No resources found in kube-public namespace.\n", 0)
    result = get("svc", all_namespaces=True, selector="nothing")
    assert (result.stdout, result.stderr) == ("", "No resources found\n")
    assert get("pods", namespace="kube-public", output="name").stderr == ""


def test_field_selectors():
    assert out("pods", output="name", all_namespaces=True,
               field_selector="spec.nodeName=node2,metadata.namespace!=kube-system") == (
        "pod/web-5d8f7c9b4-fghij\npod/worker\n")
    assert out("pods", output="name", field_selector="metadata.name==client") == "pod/client\n"
    assert out("ns", output="name", field_selector="status.phase=Active,"
               "metadata.name=team-a") == "namespace/team-a\n"


def test_output_formats():
    assert parse_output(None).kind == "table"
    assert parse_output("jsonpath={.a}").template == "{.a}"
    assert parse_output("custom-columns=A:.a,B:.b").template == "A:.a,B:.b"
    with pytest.raises(KubectlError):
        parse_output("go-template={{.a}}")


@pytest.mark.parametrize(("seconds", "shown"), [
    (-2, "<invalid>"), (-1, "0s"), (0, "0s"), (119, "119s"), (120, "2m"), (121, "2m1s"),
    (599, "9m59s"), (600, "10m"), (179 * 60 + 59, "179m"), (3 * 3600, "3h"),
    (3 * 3600 + 30 * 60, "3h30m"), (8 * 3600, "8h"), (47 * 3600 + 59 * 60, "47h"),
    (48 * 3600, "2d"), (49 * 3600, "2d1h"), (8 * 86400, "8d"), (729 * 86400, "729d"),
    (730 * 86400, "2y"), (731 * 86400, "2y1d"), (8 * 365 * 86400, "8y"),
])
def test_age_reads_as_kubectls(seconds, shown):
    assert human_duration(seconds) == shown


def test_alignment_is_the_cells_widest_plus_three_but_at_least_six():
    assert align([["A", "B", "C"], ["xx", "yyyyyyyyy", "z"]]) == (
        "A     B           C\n"
        "xx    yyyyyyyyy   z\n")
    assert align([]) == ""
