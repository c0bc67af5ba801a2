"""``/healthz`` (the process is up) and ``/readyz`` (Redis answers): for probes, with no key."""
from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from producers.web.deps import ServiceDep

router = APIRouter(tags=["service"])


#: A probe may ask HEAD (load balancers and uptime monitors do): the same answer without its body.
PROBE = ["GET", "HEAD"]


@router.api_route("/healthz", methods=PROBE)
def healthz() -> dict:
    """The process is up."""
    return {"ok": True}


@router.api_route("/readyz", methods=PROBE, responses={503: {"description": "Redis does not answer"}})
def readyz(svc: ServiceDep) -> Response:
    """Ready to take imports: Redis answers."""
    try:
        svc.store.r.ping()
    except Exception as exc:  # noqa: BLE001 - any failure to reach Redis is "not ready"
        return JSONResponse({"error": {"code": "not_ready", "message": f"Redis does not answer: {exc}"}}, 503)
    return JSONResponse({"ok": True})
