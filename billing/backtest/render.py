"""The diff and backtest report as JSON, a text table or Markdown for a pull-request comment.
Pure: data in, text out. Amounts are major units of the catalogue's currency, written
exactly; percentages are rounded half-up to 0.01 (docs/pricing-changes.md)."""

from __future__ import annotations

import json
from typing import Any

from billing.backtest.reprice import Backtest, Move
from billing.pricing.commitments import Bracket

TOP = 5  # customers shown each way in the table and Markdown (JSON lists them all)


def _text(value: Any) -> str | None:
    return None if value is None else format(value, "f")


def _move(move: Move) -> dict[str, str | None]:
    return {
        "old": _text(move.old),
        "new": _text(move.new),
        "delta": _text(move.delta),
        "delta_pct": _text(move.delta_pct),
    }


def backtest_json(report: Backtest) -> dict[str, Any]:
    """The `backtest` object of the JSON output (shape in docs/pricing-changes.md)."""
    customers = sorted(report.customers.items(), key=lambda item: (-item[1].delta, item[0]))
    return {
        "records": report.records,
        "pending": report.pending,
        "periods": [{"month": month, **_move(move)} for month, move in report.months.items()],
        "total": _move(report.total),
        "by_product": [
            {"product": product, "month": month, **_move(move)}
            for (product, month), move in report.by_product.items()
        ],
        "customers": [{"customer": c, **_move(move)} for c, move in customers],
        "caps": [
            {
                "customer": cap.customer,
                "product": cap.product,
                "month": cap.month,
                "cap": _text(cap.cap),
                "quantity_old": _text(cap.quantity_old),
                "quantity_new": _text(cap.quantity_new),
                "drop_pct": _text(cap.drop_pct),
            }
            for cap in report.caps
        ],
        "commitments": [
            {
                "customer": move.customer,
                "monthly_old": _text(move.monthly_old),
                "monthly_new": _text(move.monthly_new),
                "bracket_old": _bracket(move.bracket_old),
                "bracket_new": _bracket(move.bracket_new),
            }
            for move in report.commitments
        ],
        "mismatches": [
            {
                "customer": m.customer,
                "month": m.month,
                "product": m.product,
                "invoiced": _text(m.invoiced),
                "repriced": _text(m.repriced),
            }
            for m in report.mismatches
        ],
    }


def _bracket(bracket: Bracket | None) -> dict[str, Any] | None:
    if bracket is None:
        return None
    return {
        "years": bracket.years,
        "min_credit": _text(bracket.min_credit),
        "discount_percent": _text(bracket.discount_percent),
    }


def _bracket_text(bracket: Bracket | None) -> str:
    if bracket is None:
        return "pay as you go"
    return (
        f"{bracket.years}-year from {bracket.min_credit:f} "
        f"({bracket.discount_percent.normalize():f}% off)"
    )


def as_json(changes: list[dict[str, Any]], report: Backtest | None, violations: list[str]) -> str:
    """The whole output: {"changes", "backtest" (null without one), "violations"}."""
    document = {
        "changes": changes,
        "backtest": None if report is None else backtest_json(report),
        "violations": violations,
    }
    return json.dumps(document, indent=2)


def _pct(move: Move) -> str:
    pct = move.delta_pct
    return "new" if pct is None and move.new else "" if pct is None else f"{pct:+}%"


def _rows(report: Backtest) -> list[tuple[str, list[list[str]], list[str]]]:
    """The report's sections as (title, rows, header) for both text forms."""
    moves = ["old", "new", "delta", "%"]

    def cells(move: Move) -> list[str]:
        return [f"{move.old}", f"{move.new}", f"{move.delta:+}", _pct(move)]

    sections = [
        (
            "By month",
            [[m, *cells(move)] for m, move in report.months.items()]
            + [["total", *cells(report.total)]],
            ["month", *moves],
        ),
        (
            "By product",
            [[p, m, *cells(move)] for (p, m), move in report.by_product.items() if move.delta],
            ["product", "month", *moves],
        ),
    ]
    ranked = sorted(report.customers.items(), key=lambda item: (-item[1].delta, item[0]))
    rises = [[c, *cells(move)] for c, move in ranked if move.delta > 0][:TOP]
    falls = [[c, *cells(move)] for c, move in reversed(ranked) if move.delta < 0][:TOP]
    sections.append((f"Largest rises (top {TOP})", rises, ["customer", *moves]))
    sections.append((f"Largest falls (top {TOP})", falls, ["customer", *moves]))
    sections.append(
        (
            "Spend caps that buy a different quantity",
            [
                [
                    c.customer,
                    c.product,
                    f"{c.cap}",
                    _text(c.quantity_old) or "no limit",
                    _text(c.quantity_new) or "no limit",
                    "" if c.drop_pct is None else f"{-c.drop_pct:+}%",
                ]
                for c in report.caps
            ],
            ["customer", "product", "cap", "buys (old)", "buys (new)", "%"],
        )
    )
    sections.append(
        (
            "Commitments whose recommended bracket changes",
            [
                [
                    m.customer,
                    f"{m.monthly_old}",
                    f"{m.monthly_new}",
                    _bracket_text(m.bracket_old),
                    _bracket_text(m.bracket_new),
                ]
                for m in report.commitments
            ],
            [
                "customer",
                "monthly (old)",
                "monthly (new)",
                "recommended (old)",
                "recommended (new)",
            ],
        )
    )
    return sections


def _changes_lines(changes: list[dict[str, Any]]) -> list[str]:
    if not changes:
        return ["No change to prices or products."]
    lines = []
    for change in changes:
        lines.append(f"{change['kind']}: {change.get('product') or ''}".rstrip(": "))
        lines.extend(f"  {detail}" for detail in change.get("details", []))
        for point in change.get("prices", []):
            lines.append(
                f"  at {point['quantity']}: {point.get('old') or '-'} -> {point.get('new') or '-'}"
            )
    return lines


def as_table(changes: list[dict[str, Any]], report: Backtest | None, violations: list[str]) -> str:
    """A plain-text report for a terminal."""
    out = ["Changes", *_changes_lines(changes)]
    if report is not None:
        out += ["", f"Backtest: {report.records} records re-priced, {report.pending} pending"]
        if report.mismatches:
            out.append(
                f"MISMATCH: {len(report.mismatches)} records do not reproduce their "
                "invoices under the old tier files: history and code disagree"
            )
        for title, rows, header in _rows(report):
            out += ["", title]
            if not rows:
                out.append("  (none)")
                continue
            widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
            for row in [header, *rows]:
                out.append(
                    "  " + "  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True))
                )
    out += ["", "Violations" if violations else "No rule violated."]
    out += [f"  {v}" for v in violations]
    return "\n".join(out) + "\n"


def as_markdown(
    changes: list[dict[str, Any]], report: Backtest | None, violations: list[str]
) -> str:
    """A report fit for a pull-request comment (GitHub-flavoured Markdown)."""
    out = ["## Price change", ""]
    if violations:
        out += [f"**{len(violations)} rule violation(s): do not merge.**", ""]
        out += [f"- {v}" for v in violations] + [""]
    else:
        out += ["No rule violated.", ""]
    out += ["### Changes", "", "```text", *_changes_lines(changes), "```"]
    if report is not None:
        out += [
            "",
            f"### Backtest ({report.records} records re-priced, {report.pending} pending)",
        ]
        if report.mismatches:
            out += [
                "",
                f"> **Mismatch**: {len(report.mismatches)} records do not reproduce "
                "their invoices under the old tier files.",
            ]
        for title, rows, header in _rows(report):
            out += ["", f"#### {title}", ""]
            if not rows:
                out.append("(none)")
                continue
            out.append("| " + " | ".join(header) + " |")
            out.append(
                "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|"
            )
            out += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(out) + "\n"
