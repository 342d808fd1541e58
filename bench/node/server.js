// Baseline for `make bench`: the Outspeed doc's express /token handler as a competent team
// would hand-write it: one process, one keep-alive agent for the upstream, the agent id
// URL-encoded, the upstream JSON passed through unchanged. Not shipped; only measured.
//
//   OUTSPEED_API_KEY=k OUTSPEED_API_BASE=http://127.0.0.1:8081 PORT=8090 node server.js
"use strict";

const http = require("node:http");
const https = require("node:https");
const express = require("express");

const base = new URL(process.env.OUTSPEED_API_BASE || "https://api.outspeed.com");
const client = base.protocol === "https:" ? https : http;
// Pooled keep-alive connections, as the Python endpoint's requests.Session has.
const agent = new client.Agent({ keepAlive: true, maxSockets: 256 });
const timeoutMs = 1000 * Number(process.env.UPSTREAM_TIMEOUT_SECONDS || 10);

function mintSession(agentId) {
  return new Promise((resolve, reject) => {
    const req = client.request(
      {
        agent,
        protocol: base.protocol,
        hostname: base.hostname,
        port: base.port,
        method: "POST",
        path: `/v1/realtime/sessions?agent_id=${encodeURIComponent(agentId)}`,
        headers: {
          Authorization: `Bearer ${process.env.OUTSPEED_API_KEY}`,
          "Content-Type": "application/json",
          "Content-Length": 0,
        },
        timeout: timeoutMs,
      },
      (res) => {
        const chunks = [];
        res.on("data", (c) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString() }));
        res.on("error", reject);
      },
    );
    req.on("timeout", () => req.destroy(new Error("upstream timeout")));
    req.on("error", reject);
    req.end();
  });
}

const app = express();
app.disable("x-powered-by");
app.use(express.json({ limit: "16kb" }));

app.post("/token", async (req, res) => {
  try {
    const { agentId } = req.body || {};
    if (typeof agentId !== "string" || agentId.length === 0) {
      res.status(400).json({ error: "agentId required" });
      return;
    }
    const upstream = await mintSession(agentId);
    if (upstream.status < 200 || upstream.status >= 300) {
      console.error("Failed to generate ephemeral key:", upstream.status);
      res.status(502).json({ error: "Failed to generate token" });
      return;
    }
    res.set("Cache-Control", "no-store");
    res.json(JSON.parse(upstream.body));
  } catch (error) {
    console.error("Failed to generate ephemeral key:", error.message);
    res.status(500).json({ error: "Internal server error" });
  }
});

const port = Number(process.env.PORT || 8090);
app.listen(port, "127.0.0.1", () => console.log(`node baseline listening on 127.0.0.1:${port}`));
