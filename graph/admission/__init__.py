"""Admission: the ordered checks every operation passes before an executor sees it.

``admission_steps`` gives the app's list, in this order (``graph/admission/pipeline.py`` runs it):

1. ``trusted_documents``: only trusted documents, when the server is so configured (``trusted.py``);
2. ``parse``: the token limit, and the document cache (``document.py``);
3. ``select_operation``: the operation ``operationName`` names (``document.py``);
4. ``observe_operation``: the operation's type and name for the access log and metrics
   (``graph/observability/operation.py``);
5. ``served_by_transport``: no mutation over GET, no subscription over HTTP (``document.py``);
6. ``validate``: every validation rule, the depth, alias and directive limits among them;
7. ``cache_policy``: how long and for whom the answer may be cached; refuses nothing
   (``cache_policy.py``, from the schema's ``@cacheControl`` hints);
8. ``nul_free_variables``: no NUL in string variables (``nul.py``);
9. ``variables``: the variables coerced once, for the limits and the executors (``variables.py``);
10. ``cost_limit``: the operation's node count (``cost.py``);
11. ``budget``: the viewer's cost budget, charged (``budget.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from graph.admission.budget import ChargeBudget
from graph.admission.cache_policy import CachePolicyStep
from graph.admission.cost import CostLimit
from graph.admission.document import Parse, Validate, select_operation, served_by_transport
from graph.admission.nul import nul_free_variables
from graph.admission.pipeline import AdmissionPipeline, AdmissionStep, Operation, Refused
from graph.admission.trusted import TrustedOnly
from graph.admission.variables import CoerceVariables
from graph.caches import COSTS, DOCUMENTS, VARIABLES
from graph.observability.operation import observe_operation

if TYPE_CHECKING:
    from db.budget import Budget
    from graph.caches import Caches
    from graph.schema import ConduitSchema
    from graph.settings import Settings

__all__ = ["AdmissionPipeline", "AdmissionStep", "Operation", "Refused", "admission_steps"]


def admission_steps(
    schema: ConduitSchema, settings: Settings, caches: Caches, budget: Budget | None
) -> list[AdmissionStep]:
    """The app's admission steps, in order (module docstring); ``budget`` ``None`` leaves the budget out."""
    graphql_schema = schema._schema
    hide = settings.field_suggestions_hidden
    steps: list[Any] = []
    if schema.trusted_documents is not None and settings.persisted_documents_only:
        steps.append(TrustedOnly(schema.trusted_documents))
    steps += [
        Parse(caches[DOCUMENTS], settings.max_tokens),
        select_operation,
        observe_operation,
        served_by_transport,
        Validate(graphql_schema, schema.validation_rules, caches[DOCUMENTS], hide_suggestions=hide),
        CachePolicyStep(graphql_schema, caches[COSTS]),
        nul_free_variables,
        CoerceVariables(graphql_schema, caches[VARIABLES], hide_suggestions=hide),
        CostLimit(graphql_schema, settings.max_cost, caches[COSTS]),
    ]
    if budget is not None:
        steps.append(ChargeBudget(graphql_schema, budget, caches[COSTS]))
    return steps
