"""Qdrant's formula queries (score boosting) in the stand-in: the REST expression tree as Qdrant Edge's.

A part of the stand-in (qdrant_standin.py): test infrastructure only. Shapes follow Qdrant's
REST API (`{"formula": <expression>, "defaults": {...}}`); what the engine cannot be given
here (geo distance) or a shape that is not one answers 400 through the stand-in's handler.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import qdrant_edge as qe

Condition = Callable[[Any], Any]
_DECAYS = {"exp_decay": qe.DecayKind.Exp, "lin_decay": qe.DecayKind.Lin, "gauss_decay": qe.DecayKind.Gauss}
_LISTS = {"mult": qe.Expression.Mult, "sum": qe.Expression.Sum}
_UNARY = {
    "neg": qe.Expression.Neg,
    "sqrt": qe.Expression.Sqrt,
    "exp": qe.Expression.Exp,
    "log10": qe.Expression.Log10,
    "ln": qe.Expression.Ln,
    "abs": qe.Expression.Abs,
}


def formula_in(spec: dict[str, Any], condition: Condition) -> qe.Formula:
    return qe.Formula(expression(spec["formula"], condition), defaults=spec.get("defaults") or None)


def expression(spec: Any, condition: Condition) -> qe.Expression:
    e = qe.Expression
    if isinstance(spec, bool):
        raise ValueError(f"formula: {spec!r} is not an expression")
    if isinstance(spec, int | float):
        return e.Constant(float(spec))
    if isinstance(spec, str):  # $score, $score[i], or a payload key
        return e.Variable(spec)
    if not isinstance(spec, dict) or len(spec) != 1:
        return e.Condition(condition(spec))
    ((kind, value),) = spec.items()
    if kind in _LISTS:
        return _LISTS[kind]([expression(item, condition) for item in value])
    if kind in _UNARY:
        return _UNARY[kind](expression(value, condition))
    if kind == "div":
        return e.Div(
            expression(value["left"], condition),
            expression(value["right"], condition),
            by_zero_default=value.get("by_zero_default"),
        )
    if kind == "pow":
        return e.Pow(expression(value["base"], condition), expression(value["exponent"], condition))
    if kind == "datetime":
        return e.Datetime(value)
    if kind == "datetime_key":
        return e.DatetimeKey(value)
    if kind in _DECAYS:
        target = value.get("target")
        return e.Decay(
            _DECAYS[kind],
            expression(value["x"], condition),
            target=None if target is None else expression(target, condition),
            midpoint=value.get("midpoint"),
            scale=value.get("scale"),
        )
    if kind == "geo_distance":
        raise ValueError("formula: the Qdrant stand-in does not implement geo_distance")
    return e.Condition(condition(spec))
