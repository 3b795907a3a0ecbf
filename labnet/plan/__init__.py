"""Stage 2, plan: what the lab must be, computed from the spec alone (pure, deterministic,
no root). Imports only the model and the shared pure modules (names, addressing, errors).

    types      the plan's dataclasses, and its JSON form (the state directory's record)
    topology   scheduling, pod addresses, netns and interface names: `make_plan`
    services   ClusterIP / NodePort / LoadBalancer allocation and endpoints
    links      every link of the lab as a record the builder, inspect and graph share

Later stages import the public names from here: `from labnet.plan import Plan, make_plan`.
"""

from labnet.plan.links import PlanLink, plan_links
from labnet.plan.topology import make_plan, replica_of
from labnet.plan.types import (
    PLAN_VERSION,
    Plan,
    PlanContainer,
    PlanEndpoint,
    PlanHost,
    PlanNetwork,
    PlanNode,
    PlanPod,
    PlanPort,
    PlanService,
    PlanServicePort,
)

__all__ = [
    "PLAN_VERSION", "Plan", "PlanContainer", "PlanEndpoint", "PlanHost", "PlanLink", "PlanNetwork",
    "PlanNode", "PlanPod", "PlanPort", "PlanService", "PlanServicePort", "make_plan", "plan_links",
    "replica_of",
]
