"""The report of a run: everything the command prints, as one JSON-ready dict and as terminal text."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from scimsvc.tools.loadtest.admissions import credit_accounting, early_admissions
from scimsvc.tools.loadtest.samples import Sample
from scimsvc.tools.loadtest.stats import latency_summary


def build_report(
    samples: Sequence[Sample], *, elapsed: float, settings: Mapping[str, Any], notes: Sequence[str] = ()
) -> dict[str, Any]:
    """Everything the command prints, as one JSON-ready dict."""
    elapsed = max(elapsed, 1e-9)
    statuses = Counter("error" if s.status is None else str(s.status) for s in samples)
    admitted = [s for s in samples if s.admitted]
    rejected = statuses.get("429", 0)
    routes: dict[str, dict[str, Any]] = {}
    for route in sorted({s.route for s in samples}):
        own = [s for s in samples if s.route == route]
        ok = [s.latency for s in own if s.admitted]
        routes[route] = {
            "sent": len(own),
            "admitted": len(ok),
            "429": sum(1 for s in own if s.status == 429),
            **latency_summary(ok),
        }
    early, announced = early_admissions(samples)
    return {
        **settings,
        "elapsed_s": round(elapsed, 3),
        "sent": len(samples),
        "admitted": len(admitted),
        "sent_per_s": round(len(samples) / elapsed, 1),
        "admitted_per_s": round(len(admitted) / elapsed, 1),
        "status_counts": dict(sorted(statuses.items())),
        "rejected_429": rejected,
        "share_429": round(rejected / len(samples), 4) if samples else 0.0,
        "latency_admitted": latency_summary(s.latency for s in admitted),
        "latency_429": latency_summary(s.latency for s in samples if s.status == 429),
        "routes": routes,
        "early_admissions": {
            "count": len(early),
            "rejections_with_retry_after": announced,
            "examples": [vars(e) for e in early[:5]],
        },
        "credits": credit_accounting(samples, elapsed),
        "notes": list(notes),
    }


def format_report(report: Mapping[str, Any]) -> str:
    """The report as text for a terminal."""
    c = report["credits"]
    early = report["early_admissions"]
    lines = [
        f"target      {report['base_url']}  mix={report['mix']}  concurrency={report['concurrency']}  "
        f"rate={str(report['rate']) + '/s' if report['rate'] else 'unlimited'}  "
        f"Retry-After {report['retry_after']}",
        f"elapsed     {report['elapsed_s']:.1f} s",
        f"sent        {report['sent']}  ({report['sent_per_s']}/s)",
        f"admitted    {report['admitted']}  ({report['admitted_per_s']}/s)",
        f"429s        {report['rejected_429']}  ({report['share_429']:.1%} of sent)",
        "statuses    " + "  ".join(f"{k}: {v}" for k, v in report["status_counts"].items()),
        f"early       {early['count']} admission(s) before a previous 429's Retry-After "
        f"(of {early['rejections_with_retry_after']} 429s with one)",
    ]
    if c["limit"] is None:
        lines.append(f"credits     {c['admitted_credits']} admitted; the server announced no RateLimit-Limit")
    else:
        lines.append(
            f"credits     {c['admitted_credits']} admitted / {c['allowed_over_run']} allowed "
            f"(limit {c['limit']} + refill over {report['elapsed_s']:.1f} s) = ratio {c['ratio']}; "
            f"offered {c['offered_credits']} = {c['overload']}x the refill"
        )
    lines += [
        "",
        "per route (latency of admitted requests; a 429 is answered before any work is done):",
        f"{'route':<22}{'sent':>7}{'ok':>7}{'429':>6}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'max ms':>9}",
    ]
    for route, r in report["routes"].items():
        keys = ("p50_ms", "p90_ms", "p99_ms", "max_ms")
        cells = "".join(f"{r[k]:>9.1f}" if r["admitted"] else f"{'-':>9}" for k in keys)
        lines.append(f"{route:<22}{r['sent']:>7}{r['admitted']:>7}{r['429']:>6}{cells}")
    lines += [f"note: {n}" for n in report["notes"]]
    return "\n".join(lines)
