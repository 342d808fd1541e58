// @ts-check
// The example page: fetch an ephemeral key for an agent id and show the outcome (never the key).
import { requestEphemeralKey, EphemeralKeyError } from "./getEphemeralKeyFromServer.js";

const DEFAULT_ENDPOINT = "http://localhost:8080/token";
const params = new URLSearchParams(location.search);
const $ = (/** @type {string} */ id) => /** @type {HTMLElement} */ (document.getElementById(id));
const endpointInput = /** @type {HTMLInputElement} */ ($("endpoint"));
const agentInput = /** @type {HTMLInputElement} */ ($("agentId"));
const button = /** @type {HTMLButtonElement} */ ($("get"));
const result = $("result");

$("origin").textContent = location.origin;
endpointInput.value = params.get("endpoint") || DEFAULT_ENDPOINT;
agentInput.value = params.get("agentId") || "your-agent-id";

/** Replace the result box with a title and paragraphs (text only: nothing is parsed as HTML). */
function show(/** @type {string} */ state, /** @type {string} */ title, /** @type {string[]} */ lines) {
  result.dataset.state = state;
  const heading = Object.assign(document.createElement("p"), { className: "title", textContent: title });
  result.replaceChildren(heading, ...lines.map((text) => Object.assign(document.createElement("p"), { textContent: text })));
}

$("form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const agentId = agentInput.value.trim();
  button.disabled = true;
  show("loading", "Requesting an ephemeral key…", []);
  try {
    const key = await requestEphemeralKey(agentId, { endpoint: endpointInput.value, source: "example-web" });
    const expiry = key.expiresAt === null ? "an unstated time"
      : `${new Date(key.expiresAt * 1000).toLocaleTimeString()} (in ${Math.max(0, Math.round(key.expiresAt - Date.now() / 1000))} s)`;
    show("success", `Got an ephemeral key for agent ${agentId}.`, [
      `It expires at ${expiry}.`,
      "The key itself is not shown: pass it to conversation.startSession({ agentId, ephemeralKey }).",
    ]);
  } catch (error) {
    if (!(error instanceof EphemeralKeyError)) throw error;
    const lines = [error.message];
    if (error.code === "network_error") {
      lines.push(`Either nothing answers at that URL, or the endpoint's allowedHostnames do not include this page's host (${location.hostname}) and the browser hid the answer (CORS); the browser console says which.`);
    }
    if (error.retryAfter !== undefined) lines.push(`Retry after ${error.retryAfter} s.`);
    show("error", `Error: ${error.code}${error.status ? ` (HTTP ${error.status})` : ""}`, lines);
  } finally {
    button.disabled = false;
  }
});
