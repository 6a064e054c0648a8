"""/docs: FastAPI's Swagger UI page with its assets from the package (vendored from npm by
`make css`), so it renders offline; its one inline script is allowed by hash."""

from __future__ import annotations

import html
import re

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse

from volcimage.http.headers import content_security_policy

INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.S)


def install_docs(app: FastAPI, title: str, image_origin: str | None) -> None:
    swagger = get_swagger_ui_html(
        openapi_url=app.openapi_url or "/openapi.json",
        title=html.escape(title),
        swagger_js_url="/static/vendor/swagger-ui-bundle.js",
        swagger_css_url="/static/vendor/swagger-ui.css",
        swagger_favicon_url="/static/favicon.svg",
    ).body
    page = bytes(swagger).decode()
    csp = content_security_policy(image_origin, INLINE_SCRIPT.findall(page))

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return HTMLResponse(page, headers={"Content-Security-Policy": csp})
