"""The body-size limit, applied before the app reads a byte of the body."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

from .limits import MAX_USERS
from .replies import error_response


class BodyLimit:
    """Refuse bodies over the limit before they are read in full (pure ASGI, also for chunked bodies)."""

    def __init__(self, app: Any, limit: int):
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")

        def too_big() -> JSONResponse:
            return error_response(
                413, f"request body over {self.limit:,} bytes; send at most {MAX_USERS:,} users per request"
            )

        if length is not None:
            try:
                if int(length) > self.limit:
                    return await too_big()(scope, receive, send)
            except ValueError:
                return await error_response(400, "invalid Content-Length header")(scope, receive, send)
        seen = 0
        responded = False

        async def limited() -> Any:
            nonlocal seen, responded
            if responded:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    # Answer now and stop reading; the app sees a disconnected client.
                    responded = True
                    await too_big()(scope, receive, send)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Any) -> None:
            if not responded:
                await send(message)

        try:
            await self.app(scope, limited, guarded_send)
        except Exception:
            if not responded:
                raise
