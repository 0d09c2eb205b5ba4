"""The dashboard: one HTML page and its script and stylesheet, served from the package itself.

No build step and no CDN: the page loads only these files (the Content-Security-Policy header
enforces it) and talks to the JSON API with the bearer token the user enters.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException, Response
from fastapi.responses import HTMLResponse

router = APIRouter(include_in_schema=False)

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
ASSETS = {"app.js": "text/javascript; charset=utf-8", "style.css": "text/css; charset=utf-8",
          "favicon.svg": "image/svg+xml"}
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
       "connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'")


def public_paths() -> set[str]:
    """Paths served without a token: the liveness probe and the page shell (no data in them)."""
    return {"/", "/health", *(f"/static/{name}" for name in ASSETS)}


@router.get("/", response_class=HTMLResponse)
def index() -> HTMLResponse:
    return HTMLResponse((STATIC_DIR / "index.html").read_text(encoding="utf-8"),
                        headers={"content-security-policy": CSP, "cache-control": "no-cache"})


@router.get("/static/{name}")
def asset(name: str) -> Response:
    if name not in ASSETS:
        raise HTTPException(404, f"no static file {name!r}")
    return Response((STATIC_DIR / name).read_bytes(), media_type=ASSETS[name],
                    headers={"cache-control": "no-cache", "x-content-type-options": "nosniff"})
