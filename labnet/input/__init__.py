"""Stage 1, input: the lab file and its Kubernetes manifests, read with their locations and
validated into a `LabSpec` (labnet.model). Every problem is found here, with file:line, before
anything is planned or built.

    yamlsrc    YAML with file:line for every value, and size limits
    checks     field-level checks shared by the validators (names, labels, ports, addresses)
    workloads  Namespace, Pod, Deployment manifests
    services   Service and EndpointSlice manifests
    security   securityContext
    labfile    the lab file: settings, the one loader, and cross-object checks
"""
