"""kubectl's view of a lab: the lab's Pods, Services, Endpoints, EndpointSlices, Nodes and
Namespaces as Kubernetes objects, and `kubectl get`'s selectors, JSONPath and printers over
them. Pure (no root, no kernel): `labnet.Lab.kubectl_get` gathers what a running lab is and
hands it here; the `labnet get` command prints the result.

    objects.py    plan + status report + desired manifests -> object dicts (API shapes)
    resources.py  the resource types (names, kinds, groups) and kubectl's errors about them
    selectors.py  -l (labels.Parse) and --field-selector (fields.ParseSelector)
    jsonpath.py   kubectl's JSONPath template dialect (a port of client-go's)
    printers.py   table, name, json, yaml, jsonpath, custom-columns
    command.py    `kubectl get` itself: arguments, namespaces, one object or a List, errors
"""

from labnet.kubectl.command import GetRequest, GetResult, run_get
from labnet.kubectl.objects import Cluster
from labnet.kubectl.resources import RESOURCES, KubectlError, Resource, resource_for

__all__ = ["RESOURCES", "Cluster", "GetRequest", "GetResult", "KubectlError", "Resource",
           "resource_for", "run_get"]
