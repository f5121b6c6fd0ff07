"""Flow documents: models, validation and the sandboxed expression engine.

Typical use::

    from dialflow.flows import FlowError, load_flow, validate_text

    result = validate_text(body, request.headers.get("content-type"))
    if not result.ok:
        ...  # 422 with [p.to_dict() for p in result.errors]
    flow = result.flow
"""

from dialflow.flows.expressions import (
    ExpressionError,
    evaluate,
    evaluate_condition,
    render,
    render_value,
)
from dialflow.flows.model import (
    NODE_TYPES,
    Flow,
    FlowError,
    Node,
    Problem,
    load_flow,
    parse_document,
)
from dialflow.flows.validate import ValidationResult, validate_flow, validate_text

__all__ = [
    "NODE_TYPES",
    "ExpressionError",
    "Flow",
    "FlowError",
    "Node",
    "Problem",
    "ValidationResult",
    "evaluate",
    "evaluate_condition",
    "load_flow",
    "parse_document",
    "render",
    "render_value",
    "validate_flow",
    "validate_text",
]
