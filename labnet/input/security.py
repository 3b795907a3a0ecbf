"""What a pod command may do: a container's securityContext (and its pod's), turned into the
user, group and capabilities labnet.kernel.nsexec gives the program. Pure.

labnet has no images, so there is no image user to fall back to: a command without
`runAsUser` runs as nobody (65534), with no capability at all — never as the host's root. Root
only when asked: `runAsUser: 0` gives a container runtime's default root capabilities (plus
`capabilities.add`, minus `capabilities.drop`), `privileged: true` gives everything. A non-root
user gets exactly `capabilities.add`. Unless privileged, no_new_privs is set.
"""

from __future__ import annotations

from labnet.errors import Problems
from labnet.input.checks import check_fields, get_bool, get_int, get_list, get_map
from labnet.input.yamlsrc import Located, where_of
from labnet.model import CAPABILITIES, NOBODY, Security

MAX_ID = 2**31 - 1

# what containerd and Docker give a root container that asks for nothing more
DEFAULT_ROOT_CAPABILITIES = ("CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW",
                             "SETGID", "SETUID", "SETFCAP", "SETPCAP", "NET_BIND_SERVICE",
                             "SYS_CHROOT", "KILL", "AUDIT_WRITE")
POD_FIELDS = {"runAsUser", "runAsGroup", "runAsNonRoot", "fsGroup", "fsGroupChangePolicy",
              "supplementalGroups", "supplementalGroupsPolicy", "seLinuxOptions",
              "seccompProfile", "appArmorProfile", "sysctls", "windowsOptions",
              "seLinuxChangePolicy"}
CONTAINER_FIELDS = {"runAsUser", "runAsGroup", "runAsNonRoot", "privileged", "capabilities",
                    "allowPrivilegeEscalation", "readOnlyRootFilesystem", "procMount",
                    "seLinuxOptions", "seccompProfile", "appArmorProfile", "windowsOptions"}


def _capability_names(caps: Located, key: str, what: str, problems: Problems) -> list[str]:
    names = []
    items = get_list(caps, key, what, problems)
    for index, item in enumerate(items):
        where = where_of(items, index, caps.where(key))
        name = item[4:] if isinstance(item, str) and item.startswith("CAP_") else item
        if name != "ALL" and name not in CAPABILITIES:
            problems.add(where, f"{what}: unknown capability {item!r}",
                         "use names such as NET_ADMIN or NET_BIND_SERVICE, or ALL")
            continue
        names.append(name)
    return names


def parse_security(spec: Located, item: Located, what: str, problems: Problems) -> Security:
    """The effective securityContext of container `item` of pod `spec`: the container's
    fields over the pod's."""
    pod = get_map(spec, "securityContext", f"{what} spec", problems)
    container = get_map(item, "securityContext", what, problems)
    ids: dict[str, int] = {}
    non_root: tuple[bool, Located] | None = None
    for context, fields, where in ((pod, POD_FIELDS, f"{what} pod securityContext"),
                                   (container, CONTAINER_FIELDS, f"{what} securityContext")):
        check_fields(context, fields, where, problems)
        for key in ("runAsUser", "runAsGroup"):
            value = get_int(context, key, where, problems, None, 0, MAX_ID)
            if value is not None:
                ids[key] = value
        if context.get("runAsNonRoot") is not None:
            non_root = (get_bool(context, "runAsNonRoot", where, problems), context)
    where = f"{what} securityContext"
    privileged = get_bool(container, "privileged", where, problems)
    escalation = container.get("allowPrivilegeEscalation")
    if escalation is not None and not get_bool(container, "allowPrivilegeEscalation", where,
                                               problems) and privileged:
        problems.add(container.where("allowPrivilegeEscalation"),
                     f"{what}: allowPrivilegeEscalation cannot be false when privileged is true")
    caps = get_map(container, "capabilities", where, problems)
    check_fields(caps, {"add", "drop"}, f"{what} capabilities", problems)
    add = _capability_names(caps, "add", f"{what} capabilities", problems)
    drop = _capability_names(caps, "drop", f"{what} capabilities", problems)
    uid = ids.get("runAsUser", 0 if privileged else NOBODY)
    gid = ids.get("runAsGroup", 0 if uid == 0 else NOBODY)
    if non_root is not None and non_root[0] and uid == 0:
        problems.add(non_root[1].where("runAsNonRoot"),
                     f"{what}: runAsNonRoot is true but the container would run as root (uid 0)",
                     "give runAsUser a non-zero uid")
    if privileged:
        return Security(uid, gid, tuple(CAPABILITIES), True)
    if "ALL" in add:
        kept = set(CAPABILITIES)
    else:
        kept = set(DEFAULT_ROOT_CAPABILITIES) if uid == 0 else set()
        kept |= set(add)
    kept = set() if "ALL" in drop else kept - set(drop)
    return Security(uid, gid, tuple(sorted(kept, key=CAPABILITIES.__getitem__)), False)
