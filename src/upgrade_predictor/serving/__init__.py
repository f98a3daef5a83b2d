"""Online scoring: a FastAPI service over the same Scorer as batch scoring.

POST /predict takes one user (a JSON object) or a list of users; GET /health; GET /model;
OpenAPI docs at /docs. With a token file, every path but /health needs a bearer token. Every client
mistake is a 4xx with a message naming the field, never a 500.

The event loop only moves bytes: reading the JSON, checking it, scoring and writing the answer run on
a small pool of threads (LightGBM and numpy release the GIL for most of the work). Small requests have
their own lane and thread and are scored together; large ones are checked and scored a chunk at a time
on the other threads, at a lower CPU priority, so a single user is not kept waiting behind 10,000 users
with reasons. When more requests wait than the queue holds, the answer is 503 with Retry-After.

`schemas` holds the request and response models, `middleware` the body-size limit, `access` the
bearer tokens and the gate that checks them, `answerer` the work from request bytes to answer bytes,
`pool` the scoring threads, `app` the routes and `startup` the start of one or several worker processes.
"""

from .app import create_app
from .startup import serve

__all__ = ["create_app", "serve"]
