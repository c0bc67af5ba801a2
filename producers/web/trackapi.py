"""Customer.io's Track API on ``backfill serve``: what the ``customerio`` library sends.

``PUT /api/v1/customers/{id}`` adds or updates a person, ``POST /api/v1/customers/{id}/events``
records an event (``name``, ``data``, ``timestamp`` in Unix seconds, ``id`` its dedupe key;
``type: "page"`` a page view), ``POST /api/v1/events`` an anonymous event (its ``anonymous_id``: held
until an identify carrying ``anonymous_id`` ties it to the person, :mod:`worker.segment.anonymous`),
with the site id and API key as HTTP Basic auth: a backfill key
(``track`` or ``import``) as either of them. Each call becomes the Segment message it stands
for (:func:`as_segment`) and goes into the key's stream (:mod:`producers.web.tracking`), so the
same chunks, dedupe, rules and commits apply. ``DELETE /api/v1/customers/{id}`` is refused
(405, ``delete_not_supported``): backfill does not delete people one by one.
"""
from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.security import HTTPBasic, HTTPBasicCredentials

from producers.web.deps import Service, ServiceDep
from producers.web.tracking import TrackingError, bounded_body, tracking_key
from worker.store.apikeys import ApiKey
from worker.timestamps import iso

_basic = HTTPBasic(auto_error=False, description="A backfill key as the site id (or as the API key).")


def _iso(value: object) -> str | None:
    """Customer.io's Unix seconds as Segment's ISO 8601 (None when absent; text is kept for the worker to judge)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        try:
            return iso(value)
        except (ValueError, OverflowError, OSError):  # milliseconds, or nonsense: the worker says invalid_time
            return str(value)
    return str(value)


def as_segment(call: str, customer_id: str | None, body: dict) -> dict:
    """The Segment message a Track API call stands for (pure): ``call`` "identify" or "event"
    (``customer_id`` None: an anonymous event, its ``anonymous_id`` in the body)."""
    anonymous_id = body.get("anonymous_id")
    if call == "identify":
        traits = {k: v for k, v in body.items() if k not in ("id", "anonymous_id")}
        message: dict = {"type": "identify", "userId": customer_id, "traits": traits}
    else:
        data = body.get("data")
        message = {"userId": customer_id, "properties": data if isinstance(data, dict) else {}}
    if anonymous_id is not None:
        message["anonymousId"] = anonymous_id
    if call == "identify":
        return message
    if body.get("type") == "page":
        message.update(type="page", name=body.get("name"))
    else:
        message.update(type="track", event=body.get("name"))
    if body.get("id") is not None:
        message["messageId"] = str(body["id"])
    if (at := _iso(body.get("timestamp"))) is not None:
        message["timestamp"] = at
    return message


def site_key(svc: ServiceDep, user: Annotated[HTTPBasicCredentials | None, Depends(_basic)]) -> ApiKey:
    """A dependency: a tracking key sent as the site id or as the API key (HTTP Basic)."""
    return tracking_key(svc.store, [user.username, user.password] if user else [],
                        "send a backfill key as the site id (HTTP Basic)")


async def _take(request: Request, svc: Service, key: ApiKey, call: str, customer_id: str | None) -> dict:
    body = await bounded_body(request)
    try:
        data = orjson.loads(body or b"{}")
    except orjson.JSONDecodeError as exc:
        raise TrackingError(400, "invalid_json", f"the body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise TrackingError(400, "invalid_json", "the body must be a JSON object")
    anonymous_id = data.get("anonymous_id")
    if anonymous_id is not None and (isinstance(anonymous_id, bool) or not isinstance(anonymous_id, (str, int))):
        raise TrackingError(400, "invalid_anonymous_id", f"anonymous_id must be text, not {anonymous_id!r}")
    if customer_id is None and not str(anonymous_id or "").strip():
        raise TrackingError(400, "missing_anonymous_id", "an event without a customer needs its anonymous_id "
                                                         "(invite events are not supported)")
    if customer_id is not None and not customer_id.strip():
        raise TrackingError(400, "missing_user_id", "the customer id in the path is empty or only spaces")
    message = as_segment(call, customer_id.strip() if customer_id is not None else None, data)
    await svc.streams.take(key, orjson.dumps(message), message["type"], None)
    return {}


router = APIRouter(tags=["track api"])
_account = Depends(site_key)


# {customer_id:path}: an id may hold "/" (sent as %2F, which the server decodes before routing)
@router.put("/api/v1/customers/{customer_id:path}")
async def identify(customer_id: str, request: Request, svc: ServiceDep, key: ApiKey = _account) -> dict:
    """Customer.io's identify: add or update the person ``customer_id`` with the body's attributes."""
    return await _take(request, svc, key, "identify", customer_id)


@router.post("/api/v1/customers/{customer_id:path}/events")
async def event(customer_id: str, request: Request, svc: ServiceDep, key: ApiKey = _account) -> dict:
    """Customer.io's track: an event ``name`` with ``data`` (``timestamp``, ``id`` optional) for the person."""
    return await _take(request, svc, key, "event", customer_id)


@router.post("/api/v1/events")
async def anonymous_event(request: Request, svc: ServiceDep, key: ApiKey = _account) -> dict:
    """Customer.io's anonymous event: ``name``, ``data``, ``anonymous_id`` (``timestamp``, ``id`` optional),
    held until an identify carrying that ``anonymous_id`` ties it to a person."""
    return await _take(request, svc, key, "event", None)


@router.delete("/api/v1/customers/{customer_id:path}", status_code=405)
def delete(customer_id: str, key: ApiKey = _account) -> dict:
    """Refused: backfill does not delete people one by one (``backfill undo`` takes an import back)."""
    raise TrackingError(405, "delete_not_supported", f"people are not deleted one by one ({customer_id!r} is "
                                                     "kept): `backfill undo` takes back the import that made them")
