"""The resource types `labnet get` knows, named as the API server's discovery names them
(plural, singular, short names, kind, `plural.group`), and kubectl's errors about them."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["RESOURCES", "KubectlError", "Resource", "resource_for"]


class KubectlError(Exception):
    """An error as kubectl prints it (the whole line, `error: ...` or `Error from server ...`);
    `labnet get` prints it unchanged and exits 1, as kubectl does."""

    exit_code = 1


@dataclass(frozen=True)
class Resource:
    plural: str
    singular: str
    kind: str
    group: str = ""  # "" for the core group
    version: str = "v1"
    namespaced: bool = True
    short: tuple[str, ...] = ()
    # fields the API server accepts in --field-selector for this resource (besides
    # metadata.name and metadata.namespace, which every resource has)
    fields: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        """`pods`, `endpointslices.discovery.k8s.io`: as NotFound errors name the resource."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def gvr(self) -> str:
        """schema.GroupVersionResource's String(): `/v1, Resource=pods`."""
        return f"{self.group}/{self.version}, Resource={self.plural}"

    def name_of(self, name: str) -> str:
        """What `-o name` prints: `pod/NAME`, `endpointslice.discovery.k8s.io/NAME`."""
        kind = self.kind.lower()
        return f"{kind}.{self.group}/{name}" if self.group else f"{kind}/{name}"

    def not_found(self, name: str) -> KubectlError:
        return KubectlError(f'Error from server (NotFound): {self.qualified} "{name}" not found')

    def bad_request(self, label_selector: str, field_selector: str, message: str
                    ) -> KubectlError:
        """A selector the API server refuses, as kubectl's resource builder reports it."""
        return KubectlError(
            f'Error from server (BadRequest): Unable to find "{self.gvr}" that match label '
            f'selector "{label_selector}", field selector "{field_selector}": {message}')


RESOURCES = (
    Resource("pods", "pod", "Pod", short=("po",),
             fields=("spec.nodeName", "spec.restartPolicy", "spec.schedulerName",
                     "spec.serviceAccountName", "spec.hostNetwork", "status.phase",
                     "status.podIP", "status.nominatedNodeName")),
    Resource("services", "service", "Service", short=("svc",)),
    Resource("endpoints", "endpoints", "Endpoints", short=("ep",)),
    Resource("endpointslices", "endpointslice", "EndpointSlice", group="discovery.k8s.io",
             fields=("addressType",)),
    Resource("namespaces", "namespace", "Namespace", namespaced=False, short=("ns",),
             fields=("status.phase",)),
    Resource("nodes", "node", "Node", namespaced=False, short=("no",),
             fields=("spec.unschedulable",)),
)


def resource_for(name: str) -> Resource:
    """The resource a `kubectl get` argument names: plural, singular, short name or kind (any
    case), optionally `.group` or `.version.group`; else kubectl's error."""
    wanted = name.lower()
    for res in RESOURCES:
        names = {res.plural, res.singular, res.kind.lower(), *res.short}
        qualified = set()
        for n in names:
            if res.group:
                qualified |= {f"{n}.{res.group}", f"{n}.{res.version}.{res.group}"}
            else:
                qualified.add(f"{n}.{res.version}.")  # pods.v1. is the core group, spelt out
        if wanted in names | qualified:
            return res
    raise KubectlError(f'error: the server doesn\'t have a resource type "{name}"')
