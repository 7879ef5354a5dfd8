"""RFC 7644 §3.7 Bulk: parse a BulkRequest, order its operations, resolve bulkIds, build the response.

No I/O here: `bulk_service` runs each planned operation through the user and group services.

* Operations are parsed one by one: a malformed operation becomes that operation's error (400), never
  the whole request's; only a body that is not a BulkRequest at all, or one with more operations than
  `maxOperations` (413), fails as a whole.
* `bulkId:x` references, in a path (`/Groups/bulkId:x`) or as any string value in `data` (e.g. a group
  member `{"value": "bulkId:x"}`), make the operation wait for the POST whose `bulkId` is x: operations
  run in dependency order, otherwise in request order. A reference no POST defines, or a cycle, is 409
  with scimType invalidValue for the operations involved (RFC 7644 §3.7.2 lets a server stop at a
  circular reference with 409); an operation whose referenced POST failed gets 409 too.
* `failOnErrors` N: processing stops after the Nth error; operations not processed are not in the
  response. Results are listed in request order.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from scimsvc.scim.attribute_names import keys_named, member
from scimsvc.scim.body_shape import names_error, shape_error
from scimsvc.scim.errors import ScimError, invalid_syntax, invalid_value

BULK_REQUEST = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
BULK_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:BulkResponse"
METHODS = ("POST", "PUT", "PATCH", "DELETE")
RESOURCE_TYPES = {"users": "Users", "groups": "Groups"}
_REF = re.compile(r"bulkId:(.+)", re.ASCII)
_PATH = re.compile(r"/?([A-Za-z]+)(?:/([^/]+))?/?")


@dataclass(frozen=True)
class BulkOperation:
    """One parsed operation; `error` is set when it cannot be run at all (its own 400/409)."""

    index: int
    method: str
    path: str
    endpoint: str = ""  # "Users" or "Groups"
    target: str | None = None  # the resource id (or "bulkId:x") for PUT/PATCH/DELETE
    bulk_id: str | None = None
    version: str | None = None
    data: Any = None
    refs: frozenset[str] = frozenset()  # bulkIds this operation needs
    error: ScimError | None = None


@dataclass(frozen=True)
class BulkRequest:
    fail_on_errors: int | None
    operations: tuple[BulkOperation, ...]


@dataclass(frozen=True)
class BulkResult:
    """What one operation did, for the BulkResponse."""

    operation: BulkOperation
    status: int
    location: str | None = None
    version: str | None = None
    error: ScimError | None = None


def parse_bulk_request(body: Any, *, max_operations: int) -> BulkRequest:
    """A BulkRequest's operations and failOnErrors; raises only for problems of the request as a whole."""
    if not isinstance(body, dict):
        raise invalid_syntax("a /Bulk body must be a JSON object (a BulkRequest)")
    if (error := names_error(body, where="the BulkRequest")) is not None:
        raise error
    schemas = body.get("schemas")
    if schemas is not None and (
        not isinstance(schemas, list) or BULK_REQUEST.lower() not in {str(s).lower() for s in schemas}
    ):
        raise invalid_syntax(f'a BulkRequest\'s "schemas" must list {BULK_REQUEST!r}')
    raw_ops = member(body, "Operations")
    if not isinstance(raw_ops, list):
        raise invalid_syntax('a BulkRequest needs "Operations": a list of operations')
    if len(raw_ops) > max_operations:
        raise ScimError(
            413,
            f"the bulk request has {len(raw_ops)} operations; this server accepts at most {max_operations} "
            "(maxOperations in /ServiceProviderConfig): split it into several requests",
        )
    fail_on_errors = member(body, "failOnErrors")
    if fail_on_errors is not None and (
        isinstance(fail_on_errors, bool) or not isinstance(fail_on_errors, int) or fail_on_errors < 1
    ):
        raise invalid_value(f"failOnErrors must be a positive integer, got {fail_on_errors!r}")
    operations = [_parse_operation(i, raw) for i, raw in enumerate(raw_ops)]
    return BulkRequest(fail_on_errors, tuple(_check_bulk_ids(operations)))


def _parse_operation(index: int, raw: Any) -> BulkOperation:
    where = f"Operations[{index}]"
    if not isinstance(raw, dict):
        return BulkOperation(index, "", "", error=invalid_syntax(f"{where} must be a JSON object"))
    if (shape := shape_error(raw, where=where)) is not None:
        # Too deep or ambiguous: refused here, so nothing after the parser walks it.
        return _unshaped(index, raw, shape)
    method = member(raw, "method")
    path = member(raw, "path")
    bulk_id = member(raw, "bulkId")
    version = member(raw, "version")
    data = member(raw, "data")
    shown_method = method.upper() if isinstance(method, str) else ""
    shown_path = path if isinstance(path, str) else ""

    def failed(error: ScimError) -> BulkOperation:
        return BulkOperation(
            index,
            shown_method,
            shown_path,
            bulk_id=bulk_id if isinstance(bulk_id, str) else None,
            error=error,
        )

    if shown_method not in METHODS:
        return failed(invalid_value(f"{where}: method must be one of {', '.join(METHODS)}, got {method!r}"))
    if not isinstance(path, str) or not (match := _PATH.fullmatch(path)):
        return failed(invalid_value(f'{where}: path must be like "/Users" or "/Users/{{id}}", got {path!r}'))
    endpoint = RESOURCE_TYPES.get(match.group(1).lower())
    if endpoint is None:
        return failed(
            invalid_value(f"{where}: unknown resource type in path {path!r} (use /Users or /Groups)")
        )
    target = match.group(2)
    if (method := shown_method) == "POST" and target is not None:
        return failed(invalid_value(f'{where}: a POST goes to "/{endpoint}", not to {path!r}'))
    if method != "POST" and target is None:
        return failed(
            invalid_value(f'{where}: {method} needs the resource in the path: "/{endpoint}/{{id}}"')
        )
    if bulk_id is not None and (not isinstance(bulk_id, str) or not bulk_id):
        return failed(invalid_value(f"{where}: bulkId must be a non-empty string, got {bulk_id!r}"))
    if version is not None and not isinstance(version, str):
        return failed(invalid_value(f"{where}: version must be a string (an ETag), got {version!r}"))
    if method in ("POST", "PUT", "PATCH") and not isinstance(data, dict):
        return failed(invalid_value(f"{where}: {method} needs data: a JSON object"))
    refs = set(references(data))
    if target is not None and (ref := _REF.fullmatch(target)):
        refs.add(ref.group(1))
    return BulkOperation(
        index,
        method,
        path,
        endpoint=endpoint,
        target=target,
        bulk_id=bulk_id,
        version=version,
        data=data,
        refs=frozenset(refs),
    )


def _unshaped(index: int, raw: dict[str, Any], error: ScimError) -> BulkOperation:
    """The error of an operation refused for its shape; what it shows is read only where unambiguous."""
    shown: dict[str, str] = {}
    for name in ("method", "path", "bulkId"):
        spellings = [raw[key] for key in keys_named(raw, name)]
        shown[name] = spellings[0] if len(spellings) == 1 and isinstance(spellings[0], str) else ""
    method = shown["method"].upper()
    return BulkOperation(
        index,
        method if method in METHODS else "",
        shown["path"],
        bulk_id=shown["bulkId"] or None,
        error=error,
    )


def _check_bulk_ids(operations: list[BulkOperation]) -> Iterable[BulkOperation]:
    """A bulkId may be given once; a later duplicate is that operation's error."""
    seen: set[str] = set()
    for op in operations:
        bulk_id = op.bulk_id
        if op.error is None and bulk_id is not None:
            if bulk_id in seen:
                op = _with_error(
                    op, invalid_value(f"Operations[{op.index}]: bulkId {bulk_id!r} is used twice")
                )
            seen.add(bulk_id)
        yield op


def _with_error(op: BulkOperation, error: ScimError) -> BulkOperation:
    return BulkOperation(op.index, op.method, op.path, bulk_id=op.bulk_id, error=error)


def references(value: Any) -> Iterable[str]:
    """The bulkIds that `bulkId:x` strings anywhere in `value` refer to."""
    if isinstance(value, str):
        if ref := _REF.fullmatch(value):
            yield ref.group(1)
    elif isinstance(value, dict):
        for item in value.values():
            yield from references(item)
    elif isinstance(value, list):
        for item in value:
            yield from references(item)


def resolve(value: Any, ids: Mapping[str, str]) -> Any:
    """`value` with every `bulkId:x` string replaced by the id x's POST created (all must be in `ids`)."""
    if isinstance(value, str):
        ref = _REF.fullmatch(value)
        return ids[ref.group(1)] if ref else value
    if isinstance(value, dict):
        return {k: resolve(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, ids) for v in value]
    return value


def unresolved(refs: Iterable[str]) -> ScimError:
    """The error of an operation whose referenced POST did not create anything."""
    names = ", ".join(sorted(f"bulkId:{r}" for r in refs))
    return ScimError(
        409,
        f"{names} could not be resolved: the POST with that bulkId failed",
        "invalidValue",
    )


def plan(operations: Iterable[BulkOperation]) -> list[BulkOperation]:
    """The operations in the order to run them: each after the POSTs it references, else in request
    order. References to no POST, and cycles, become 409 errors (in place, so they are still reported)."""
    ops = list(operations)
    creators = {op.bulk_id: op.index for op in ops if op.error is None and op.method == "POST" and op.bulk_id}
    by_index = {op.index: op for op in ops}
    waiting_on: dict[int, set[int]] = {}
    dependents: dict[int, list[int]] = {}
    for op in ops:
        if op.error is not None:
            continue
        unknown = sorted(r for r in op.refs if r not in creators)
        if unknown:
            names = ", ".join(f"bulkId:{r}" for r in unknown)
            by_index[op.index] = _with_error(
                op,
                ScimError(
                    409,
                    f"Operations[{op.index}]: {names} cannot be resolved: no POST operation in this request "
                    "has that bulkId",
                    "invalidValue",
                ),
            )
            continue
        needs = {creators[r] for r in op.refs}
        if op.index in needs:
            needs.discard(op.index)
            by_index[op.index] = _with_error(
                op,
                ScimError(
                    409,
                    f"Operations[{op.index}] refers to its own bulkId",
                    "invalidValue",
                ),
            )
            continue
        waiting_on[op.index] = needs
        for n in needs:
            dependents.setdefault(n, []).append(op.index)
    ready = [i for i, needs in waiting_on.items() if not needs]
    heapq.heapify(ready)
    order: list[int] = []
    while ready:
        i = heapq.heappop(ready)
        order.append(i)
        for d in dependents.get(i, ()):
            if d in waiting_on and i in waiting_on[d]:
                waiting_on[d].discard(i)
                if not waiting_on[d]:
                    heapq.heappush(ready, d)
    done = set(order)
    for i in waiting_on:
        if i not in done:
            by_index[i] = _with_error(
                by_index[i],
                ScimError(
                    409,
                    f"Operations[{i}] is part of (or waits on) a circular chain of bulkId references; "
                    "break the cycle, e.g. create the resources first and link them in a later operation",
                    "invalidValue",
                ),
            )
    # Operations that failed to parse or plan count as processed where they stand in the request.
    failed = sorted(i for i, op in by_index.items() if op.error is not None)
    result: list[BulkOperation] = []
    for i in order:
        while failed and failed[0] < i:
            result.append(by_index[failed.pop(0)])
        result.append(by_index[i])
    return result + [by_index[i] for i in failed]


def bulk_response(results: Iterable[BulkResult]) -> dict[str, Any]:
    """The BulkResponse: one entry per processed operation, in request order; errors carry `response`."""
    operations = []
    for result in sorted(results, key=lambda r: r.operation.index):
        op = result.operation
        entry: dict[str, Any] = {"method": op.method or None}
        if op.bulk_id is not None:
            entry["bulkId"] = op.bulk_id
        if result.version is not None:
            entry["version"] = result.version
        if result.location is not None:
            entry["location"] = result.location
        entry["status"] = str(result.status)
        if result.error is not None:
            entry["response"] = result.error.body()
        operations.append({k: v for k, v in entry.items() if v is not None})
    return {"schemas": [BULK_RESPONSE], "Operations": operations}
