// @ts-check
/**
 * getEphemeralKeyFromServer: plain-JavaScript twin of getEphemeralKeyFromServer.ts (same logic,
 * types in JSDoc), so the example page needs no build step. See the .ts file for the docs.
 */

/** The `error` codes the token endpoint answers with (see the README's error table). */
export const ENDPOINT_ERROR_CODES = /** @type {const} */ ([
  "invalid_json", "invalid_agent_id", "invalid_source", "agent_id_required",
  "session_config_not_allowed", "unauthenticated", "app_check_failed", "app_check_replayed",
  "origin_not_allowed", "anonymous_not_allowed",
  "agent_not_allowed", "not_found",
  "duplicate_header",
  "agent_not_found", "method_not_allowed", "payload_too_large", "unsupported_media_type",
  "upstream_rate_limited", "quota_exceeded", "not_configured", "internal_error", "auth_unavailable", "quota_unavailable", "upstream_auth_failed",
  "upstream_error", "upstream_bad_response", "upstream_unreachable", "upstream_timeout",
]);
/** @typedef {(typeof ENDPOINT_ERROR_CODES)[number]} EndpointErrorCode */
/** @typedef {"network_error" | "bad_response"} ClientErrorCode */
/** @typedef {EndpointErrorCode | ClientErrorCode} EphemeralKeyErrorCode */
/** @typedef {{ value: string, expiresAt: number | null, session: Record<string, unknown> }} EphemeralKey */
/**
 * @typedef {{ endpoint?: string, source?: string, signal?: AbortSignal,
 *   getIdToken?: () => Promise<string | null>, getAppCheckToken?: () => Promise<string> }} EphemeralKeyOptions
 * getAppCheckToken: called once per request; return a limited-use token
 * (`(await getLimitedUseToken(appCheck)).token`) when the endpoint has `consume` on.
 */

export class EphemeralKeyError extends Error {
  /**
   * @param {EphemeralKeyErrorCode} code
   * @param {number} status HTTP status; 0 when no response could be read.
   * @param {string} message
   * @param {number} [retryAfter] seconds to wait before retrying (Retry-After), when the endpoint says so.
   */
  constructor(code, status, message, retryAfter) {
    super(message);
    this.name = "EphemeralKeyError";
    this.code = code;
    this.status = status;
    this.retryAfter = retryAfter;
  }
}

/** @param {unknown} v @returns {v is Record<string, unknown>} */
const isObject = (v) => typeof v === "object" && v !== null && !Array.isArray(v);
/** @param {string} v @returns {v is EndpointErrorCode} */
const isEndpointErrorCode = (v) => /** @type {readonly string[]} */ (ENDPOINT_ERROR_CODES).includes(v);

/**
 * @param {string} agentId
 * @param {EphemeralKeyOptions} [options]
 * @returns {Promise<EphemeralKey>}
 */
export async function requestEphemeralKey(agentId, { endpoint = "/token", source, signal, getIdToken, getAppCheckToken } = {}) {
  // The token providers' own failures (say, a network error refreshing the ID token) reach the
  // caller as they are: they are not the endpoint's answer.
  /** @type {Record<string, string>} */
  const headers = { "Content-Type": "application/json" };
  const idToken = getIdToken ? await getIdToken() : null;
  if (idToken) headers["Authorization"] = `Bearer ${idToken}`;
  const appCheckToken = getAppCheckToken ? await getAppCheckToken() : "";
  if (appCheckToken) headers["X-Firebase-AppCheck"] = appCheckToken;
  let response;
  try {
    response = await fetch(endpoint, {
      method: "POST",
      headers,
      body: JSON.stringify(source === undefined ? { agentId } : { agentId, source }),
      signal,
    });
  } catch (error) {
    if (signal?.aborted) throw error;
    // A CORS refusal and a network failure look the same to JavaScript: a TypeError from fetch.
    throw new EphemeralKeyError("network_error", 0,
      `Could not call ${endpoint}: the browser blocked the call (is this page's origin allowed?) or the endpoint is unreachable.`);
  }
  const header = response.headers.get("Retry-After") ?? ""; // seconds or an HTTP date
  const date = Date.parse(header);
  const retryAfter = /^\d+$/.test(header) ? Number(header)
    : date ? Math.max(0, Math.ceil((date - Date.now()) / 1000)) : undefined;
  /** @type {unknown} */
  const data = await response.json().catch((error) => {
    if (signal?.aborted) throw error; // cancelled while reading: a cancellation, not a bad answer
    return undefined;
  });
  if (!response.ok) {
    if (isObject(data) && typeof data.error === "string" && isEndpointErrorCode(data.error)) {
      const message = typeof data.message === "string" ? data.message : data.error;
      throw new EphemeralKeyError(data.error, response.status, message, retryAfter);
    }
    throw new EphemeralKeyError("bad_response", response.status,
      `The endpoint answered HTTP ${response.status} without one of its JSON errors.`, retryAfter);
  }
  const secret = isObject(data) ? data.client_secret : undefined;
  if (!isObject(data) || !isObject(secret) || typeof secret.value !== "string" || !secret.value) {
    throw new EphemeralKeyError("bad_response", response.status, "The endpoint's answer has no client_secret.value.");
  }
  const expiresAt = typeof secret.expires_at === "number" ? secret.expires_at
    : typeof data.expires_at === "number" ? data.expires_at : null;
  return { value: secret.value, expiresAt, session: data };
}

/**
 * The Outspeed document's helper: resolves to the ephemeral key string.
 * @param {string} agentId
 * @param {EphemeralKeyOptions} [options]
 * @returns {Promise<string>}
 */
export async function getEphemeralKeyFromServer(agentId, options) {
  return (await requestEphemeralKey(agentId, options)).value;
}
