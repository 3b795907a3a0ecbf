"""The only code that changes the machine: namespaces, links, addresses, routes, processes.

Everything here acts inside namespaces the lab created. The root network namespace is never
changed: `nsfs.entered` refuses to hand out a netlink socket or a sysctl file that would belong
to it.
"""
