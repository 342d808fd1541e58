"""Baseline for `make bench`'s cold start: the Python twin of bench/node/server.js, what a
Python user would write instead of this project: a Flask Cloud Function (functions-framework's
default Flask mode, `FUNCTION_USE_ASGI=false`) calling Outspeed with `requests`. Like the Node
server: one pooled keep-alive session for the upstream, the agent id URL-encoded, the upstream
JSON passed through, `Cache-Control: no-store`. Not shipped; only measured.

Its dependencies are what the endpoint's own environment already installs
(functions-framework brings Flask; `requests` is in requirements-dev.txt); deployed alone it
would need `functions-framework` and `requests` in its requirements.txt.

    OUTSPEED_API_KEY=k OUTSPEED_API_BASE=http://127.0.0.1:8081 \
      functions-framework --target token --source bench/flaskport/main.py
"""
import json
import os

import functions_framework
import requests
from flask import Response, jsonify

BASE = os.environ.get("OUTSPEED_API_BASE", "https://api.outspeed.com").rstrip("/")
TIMEOUT = float(os.environ.get("UPSTREAM_TIMEOUT_SECONDS", "10"))
# Pooled keep-alive connections, as the Node server's agent has; sized to the instance's
# concurrency (gthread serves THREADS requests at once).
session = requests.Session()
_pool = int(os.environ.get("THREADS", "10"))
session.mount(BASE + "/", requests.adapters.HTTPAdapter(pool_connections=1, pool_maxsize=_pool))


@functions_framework.http
def token(request):
    if request.method != "POST" or request.path != "/token":  # express answers only POST /token
        return jsonify(error="not found"), 404
    try:
        body = request.get_json(silent=True) or {}
        agent_id = body.get("agentId") if isinstance(body, dict) else None
        if not isinstance(agent_id, str) or not agent_id:
            return jsonify(error="agentId required"), 400
        upstream = session.post(f"{BASE}/v1/realtime/sessions", params={"agent_id": agent_id},
                                headers={"Authorization": f"Bearer {os.environ['OUTSPEED_API_KEY']}",
                                         "Content-Type": "application/json"},
                                timeout=TIMEOUT)
        if not 200 <= upstream.status_code < 300:
            print("Failed to generate ephemeral key:", upstream.status_code)
            return jsonify(error="Failed to generate token"), 502
        return Response(json.dumps(upstream.json()), 200, mimetype="application/json",
                        headers={"Cache-Control": "no-store"})
    except Exception as exc:  # the Node server's catch-all
        print("Failed to generate ephemeral key:", type(exc).__name__)
        return jsonify(error="Internal server error"), 500
