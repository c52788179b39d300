"""Filtering localisations by expressions on their columns, the same in the CLI (`var-emitter
filter --where`) and the Filter widget: comparisons of a column with numbers (<, <=, >, >=, and
==, != for whole-number columns), joined by `and` or commas, e.g. "photons > 500 and uncertainty_nm
< 20, 0.5 <= probability, fitted == 1"; frames count from 1, as in the CSV; a missing value (NaN)
meets no condition. Nothing else is evaluated (the text is parsed, never run)."""

from __future__ import annotations

import ast
import dataclasses
import operator
import re

import numpy as np
import pandas as pd

from ..errors import InputError
from ..io.localizations_csv import FRAME_COLUMNS, HEADERS

MAX_EXPRESSION_CHARS = 4000  # longer text is no filter a person wrote (and deep nesting would overflow the parser)
_OPERATORS = {ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge,
              ast.Eq: operator.eq, ast.NotEq: operator.ne}
_SYMBOLS = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!="}
_FLIPPED = {ast.Lt: ast.Gt, ast.LtE: ast.GtE, ast.Gt: ast.Lt, ast.GtE: ast.LtE, ast.Eq: ast.Eq, ast.NotEq: ast.NotEq}


@dataclasses.dataclass(frozen=True)
class Condition:
    """column <op> value."""

    column: str
    op: type
    value: float

    def mask(self, table: pd.DataFrame) -> np.ndarray:
        """(N,) bool: the rows that meet it; frames 1-based, as the user sees them; NaN meets nothing."""
        values = table[self.column].to_numpy(float) + (1 if self.column in FRAME_COLUMNS else 0)
        return _OPERATORS[self.op](values, self.value) & ~np.isnan(values)

    def __str__(self) -> str:
        return f"{self.column} {_SYMBOLS[self.op]} {self.value:g}"


def parse_filter(expression: str) -> list[Condition]:
    """The conditions of an expression (see the module docstring); an InputError says what is wrong."""
    text = expression.replace(",", " and ").strip()
    if not text:
        return []
    if len(text) > MAX_EXPRESSION_CHARS:
        raise InputError(f"filter of {len(text):,} characters: at most {MAX_EXPRESSION_CHARS:,}; write e.g. "
                         "'photons > 500 and uncertainty_nm < 20'")
    for column, header in HEADERS.items():  # a CSV's header typed as the column ("uncertainty [nm] < 10")
        if header != column and re.search(rf"(?<![\w\[]){re.escape(header)}", expression):
            raise InputError(f"filter {expression!r}: name the column {column}, not {header!r} as the CSV's header "
                             f"does (e.g. '{column} < 10')")
    try:
        tree = ast.parse(text, mode="eval").body
    except (SyntaxError, RecursionError, MemoryError) as exc:
        raise InputError(f"filter {expression!r}: not understood ({getattr(exc, 'msg', 'nested too deeply')}); "
                         "write e.g. 'photons > 500 and uncertainty_nm < 20'") from exc
    terms = tree.values if isinstance(tree, ast.BoolOp) and isinstance(tree.op, ast.And) else [tree]
    return [condition for term in terms for condition in _conditions(term, expression)]


def _conditions(term, expression: str) -> list[Condition]:
    if not isinstance(term, ast.Compare) or not all(type(op) in _OPERATORS for op in term.ops):
        raise InputError(f"filter {expression!r}: each part must compare a column with a number using <, <=, >, "
                         f">=, ==, != (joined by 'and' or commas), got {ast.unparse(term)!r}")
    items, found = [term.left, *term.comparators], []
    for (left, right), op in zip(zip(items, items[1:]), term.ops):
        if isinstance(left, ast.Name) and _is_number(right):
            found.append(Condition(left.id, type(op), _number(right)))
        elif _is_number(left) and isinstance(right, ast.Name):  # 500 < photons  ->  photons > 500
            found.append(Condition(right.id, _FLIPPED[type(op)], _number(left)))
        else:
            raise InputError(f"filter {expression!r}: {ast.unparse(term)!r} must compare a column with a number")
    return found


def _is_number(node) -> bool:
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        node = node.operand
    return isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool)


def _number(node) -> float:
    if isinstance(node, ast.UnaryOp):
        return -float(node.operand.value)
    return float(node.value)


def filter_mask(table: pd.DataFrame, expression: str) -> np.ndarray:
    """(N,) bool: the rows that meet every condition; an unknown column names those there are."""
    conditions = parse_filter(expression)
    unknown = sorted({c.column for c in conditions} - set(table.columns))
    if unknown:
        raise InputError(f"filter: no column {', '.join(map(repr, unknown))}; the table has {list(table.columns)}")
    mask = np.ones(len(table), bool)
    for condition in conditions:
        mask &= condition.mask(table)
    return mask


def range_expression(ranges: dict[str, tuple[float | None, float | None]]) -> str:
    """The expression that keeps each column within [low, high]; a side given as None is open."""
    parts = []
    for column, (low, high) in ranges.items():
        if low is not None and high is not None:
            parts.append(f"{low:.12g} <= {column} <= {high:.12g}")
        elif low is not None:
            parts.append(f"{column} >= {low:.12g}")
        elif high is not None:
            parts.append(f"{column} <= {high:.12g}")
    return " and ".join(parts)
