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

// Demo sign-in (`make run AUTH=demo`): the local issuer signs an ID token, kept in memory only
// (never shown, never stored) and sent by the helper as `Authorization: Bearer`. A real app
// gets it from its identity provider instead, e.g. Firebase's auth.currentUser.getIdToken().
const issuer = params.get("issuer");
/** @type {string | null} */
let idToken = null;
if (issuer) {
  const who = $("who");
  const signIn = /** @type {HTMLButtonElement} */ ($("sign-in"));
  const signOut = /** @type {HTMLButtonElement} */ ($("sign-out"));
  $("account").hidden = false;
  signIn.addEventListener("click", async () => {
    signIn.disabled = true;
    try {
      const response = await fetch(new URL("/demo/sign-in", issuer), {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ name: "demo-user" }),
      });
      const data = await response.json();
      if (!response.ok || typeof data.idToken !== "string") throw new Error(`HTTP ${response.status}`);
      idToken = data.idToken;
      who.textContent = "Signed in as demo-user.";
      signIn.hidden = true;
      signOut.hidden = false;
    } catch (error) {
      who.textContent = `Sign-in failed: ${error instanceof Error ? error.message : error}`;
    } finally {
      signIn.disabled = false;
    }
  });
  signOut.addEventListener("click", () => {
    idToken = null;
    who.textContent = "Signed out: the endpoint requires an ID token.";
    signIn.hidden = false;
    signOut.hidden = true;
  });
}
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
    const key = await requestEphemeralKey(agentId, {
      endpoint: endpointInput.value, source: "example-web", getIdToken: async () => idToken,
    });
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
    if (error.code === "unauthenticated") lines.push(issuer ? "Press \"Sign in (demo)\" first." : "This endpoint requires a signed-in user.");
    if (error.retryAfter !== undefined) lines.push(`Retry after ${error.retryAfter} s.`);
    show("error", `Error: ${error.code}${error.status ? ` (HTTP ${error.status})` : ""}`, lines);
  } finally {
    button.disabled = false;
  }
});
