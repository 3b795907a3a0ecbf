"""Cluster DNS: the records of the Kubernetes DNS specification (schema 1.1.0), answered the
way CoreDNS's kubernetes plugin answers them. `zone` is the data, `answer` the pure question →
reply logic, `server` the sockets in the DNS pod."""
