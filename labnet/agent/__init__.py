"""The pod agent: one process per lab that serves every pod's ports and runs pod commands.

One interpreter holds listening sockets in many namespaces (each opened while the thread is
briefly inside the pod's netns), so an idle pod costs a few kilobytes, not a process.
"""
