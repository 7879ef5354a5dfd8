"""`scimsvc loadtest`: its arguments (registered by scimsvc/cli.py), the checks, the run and the output."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

import orjson

from scimsvc.tools.loadtest.driver import Options, run_loadtest
from scimsvc.tools.loadtest.mixes import MIXES
from scimsvc.tools.loadtest.progress import live_progress, plain_progress
from scimsvc.tools.loadtest.report import format_report
from scimsvc.tools.loadtest.target import check_target


def add_loadtest_command(sub: Any) -> None:
    """Register `scimsvc loadtest` on the CLI's subparsers."""
    p = sub.add_parser("loadtest", help="drive an IdP-like SCIM request mix at a base URL and report")
    p.add_argument(
        "--base-url", required=True, help="SCIM base URL, e.g. http://127.0.0.1:8080/scim/v2 (required)"
    )
    p.add_argument("--token", required=True, help="the tenant's SCIM bearer token (required)")
    p.add_argument(
        "--rate", type=float, help="target requests per second (default: as fast as the workers go)"
    )
    p.add_argument("--duration", type=float, default=30.0, help="seconds to run (default: 30)")
    p.add_argument(
        "--requests",
        type=int,
        help="stop after this many requests (default: no limit; the duration still applies)",
    )
    p.add_argument(
        "--mix",
        choices=sorted(MIXES),
        default="okta",
        help="the request mix: an IdP's, or only writes or reads (default: okta)",
    )
    p.add_argument(
        "--concurrency", type=int, default=16, help="workers, each one request at a time (default: 16)"
    )
    honour = p.add_mutually_exclusive_group()
    honour.add_argument(
        "--honour-retry-after",
        dest="honour_retry_after",
        action="store_true",
        default=True,
        help="after a 429 a worker waits Retry-After before its next request (default)",
    )
    honour.add_argument(
        "--ignore-retry-after",
        dest="honour_retry_after",
        action="store_false",
        help="keep sending after a 429, as a misbehaving client would (default: off)",
    )
    p.add_argument(
        "--group",
        default="scimsvc-loadtest",
        help="displayName of the group to PATCH, which needs a team (default: scimsvc-loadtest)",
    )
    p.add_argument(
        "--user-domain",
        default="loadtest.example",
        help="domain of the created userNames (default: loadtest.example)",
    )
    p.add_argument(
        "--seed", type=int, help="seed the workers' choices for a repeatable mix (default: random)"
    )
    p.add_argument(
        "--log",
        metavar="FILE",
        help="write one JSON line per request to FILE: times, route, status, credits, its X-Request-Id, the "
        "id answered and the user attributes a write set (default: none)",
    )
    p.add_argument(
        "--json", action="store_true", help="print the report as one JSON object (default: a table)"
    )
    p.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a base URL that is not loopback (default: loopback only)",
    )
    p.set_defaults(func=cmd_loadtest)


def _usage_error(message: str) -> int:
    """A refused option, worded as the CLI's parser words its own (scimsvc/cli.py:_Parser); exit status 2."""
    print(f"scimsvc loadtest: error: {message} (usage: scimsvc loadtest --help)", file=sys.stderr)
    return 2


def cmd_loadtest(_settings: Any, args: argparse.Namespace) -> int:
    """Check the target, run, print the report; 1 when no request got a response."""
    try:
        base_url = check_target(args.base_url, allow_remote=args.allow_remote)
    except ValueError as exc:
        return _usage_error(str(exc))
    for name in ("duration", "concurrency", "requests", "rate"):
        value = getattr(args, name)
        if value is not None and value <= 0:
            return _usage_error(f"--{name} must be more than 0, got {value:g}")
    options = Options(
        base_url=base_url,
        token=args.token,
        duration=args.duration,
        requests=args.requests,
        rate=args.rate,
        mix=args.mix,
        concurrency=args.concurrency,
        honour_retry_after=args.honour_retry_after,
        group=args.group,
        user_domain=args.user_domain,
        seed=args.seed,
        log=args.log,
    )
    progress = live_progress if sys.stdout.isatty() and not args.json else plain_progress(sys.stderr)
    report = asyncio.run(run_loadtest(options, progress=progress))
    if args.json:
        sys.stdout.write(orjson.dumps(report).decode() + "\n")
    else:
        print(format_report(report))
    responded = sum(n for k, n in report["status_counts"].items() if k != "error")
    return 0 if responded else 1
