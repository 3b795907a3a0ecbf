"""kube-proxy's modes (--proxy-mode) labnet has, each a ProxyBackend (labnet.kubeproxy.backend).

A backend module is imported only when a lab uses it: the iptables one loads the kernel-facing
python-iptables workers, which the pure parts of labnet never need. The lab file's
`proxyMode` (labnet.model.PROXY_MODES) names one of these.
"""

from __future__ import annotations

from collections.abc import Callable

from labnet.kubeproxy.backend import ProxyBackend


def _iptables() -> ProxyBackend:
    from labnet.kubeproxy.iptables_backend import IptablesBackend

    return IptablesBackend()


def _nftables() -> ProxyBackend:
    from labnet.kubeproxy.nftables_backend import NftablesBackend

    return NftablesBackend()


BACKENDS: dict[str, Callable[[], ProxyBackend]] = {"iptables": _iptables, "nftables": _nftables}
DEFAULT_MODE = "iptables"


def backend_for(mode: str = DEFAULT_MODE) -> ProxyBackend:
    if mode not in BACKENDS:
        raise ValueError(f"unknown proxy mode {mode!r}: labnet has {', '.join(BACKENDS)}")
    return BACKENDS[mode]()
