"""kube-proxy's iptables mode, reproduced as pure data: chain names, rules, and their text.

Nothing here touches the kernel; `labnet.kernel.iptables` installs what `rules.render` returns.
"""
