/**
 * getEphemeralKeyFromServer: fetch a short-lived Outspeed ephemeral key from the token endpoint.
 * Typed, dependency-free: copy this file into your frontend. (getEphemeralKeyFromServer.js is
 * its plain-JavaScript twin, used by the example page without a build step.)
 *
 *   const ephemeralKey = await getEphemeralKeyFromServer("your-agent-id", { endpoint: TOKEN_URL });
 *   // with caller authentication on the endpoint (see the README), e.g. Firebase:
 *   const key = await getEphemeralKeyFromServer("your-agent-id", {
 *     endpoint: TOKEN_URL,
 *     getIdToken: async () => (await auth.currentUser?.getIdToken()) ?? null,
 *     getAppCheckToken: async () => (await getToken(appCheck)).token,
 *     // with replay protection on (callerAuth.appCheck.consume: true), a fresh one-use token:
 *     // getAppCheckToken: async () => (await getLimitedUseToken(appCheck)).token,
 *   });
 *   await conversation.startSession({ agentId: "your-agent-id", source: "my-app", ephemeralKey });
 */

/** The `error` codes the token endpoint answers with (see the README's error table). */
export const ENDPOINT_ERROR_CODES = [
  "invalid_json", "invalid_agent_id", "invalid_source", "agent_id_required",
  "session_config_not_allowed", "unauthenticated", "app_check_failed", "app_check_replayed",
  "origin_not_allowed", "anonymous_not_allowed",
  "agent_not_allowed", "not_found",
  "duplicate_header",
  "agent_not_found", "method_not_allowed", "payload_too_large", "unsupported_media_type",
  "upstream_rate_limited", "quota_exceeded", "not_configured", "internal_error", "auth_unavailable", "quota_unavailable", "upstream_auth_failed",
  "upstream_error", "upstream_bad_response", "upstream_unreachable", "upstream_timeout",
] as const;
export type EndpointErrorCode = (typeof ENDPOINT_ERROR_CODES)[number];

/**
 * Raised by this helper when there is no endpoint JSON error to read:
 * `network_error`: fetch itself failed; the browser blocked the call (CORS: this page's origin
 * is not allowed, or an edge refusal without CORS headers) or the endpoint is unreachable.
 * `bad_response`: the endpoint answered something that is not its JSON.
 */
export type ClientErrorCode = "network_error" | "bad_response";

export type EphemeralKeyErrorCode = EndpointErrorCode | ClientErrorCode;

export class EphemeralKeyError extends Error {
  readonly code: EphemeralKeyErrorCode;
  /** HTTP status; 0 when no response could be read. */
  readonly status: number;
  /** Seconds to wait before retrying (Retry-After), when the endpoint says so. */
  readonly retryAfter: number | undefined;

  constructor(code: EphemeralKeyErrorCode, status: number, message: string, retryAfter?: number) {
    super(message);
    this.name = "EphemeralKeyError";
    this.code = code;
    this.status = status;
    this.retryAfter = retryAfter;
  }
}

export interface EphemeralKey {
  /** Pass this to conversation.startSession; never log or display it. */
  value: string;
  /** Expiry in Unix seconds, or null if the session does not say. */
  expiresAt: number | null;
  /** The whole session object the endpoint returned. */
  session: Record<string, unknown>;
}

export interface EphemeralKeyOptions {
  /** The token endpoint URL, e.g. the `tokenUrl` stack output. Default "/token". */
  endpoint?: string;
  /** Optional `source` tag forwarded to Outspeed. */
  source?: string;
  signal?: AbortSignal;
  /**
   * The signed-in user's ID token (Firebase `auth.currentUser.getIdToken()`, Auth0, Clerk, any
   * OIDC issuer), sent as `Authorization: Bearer <token>`. Called once per request, so the
   * provider can refresh it; null (not signed in) sends no header and the endpoint answers
   * `unauthenticated`.
   */
  getIdToken?: () => Promise<string | null>;
  /**
   * A Firebase App Check token, sent as `X-Firebase-AppCheck`; called once per request.
   * Return `(await getToken(appCheck)).token` normally. When the endpoint consumes tokens
   * (`callerAuth.appCheck.consume: true`), return a limited-use token,
   * `(await getLimitedUseToken(appCheck)).token`: each is accepted once, so a cached one is
   * refused as `app_check_replayed`.
   */
  getAppCheckToken?: () => Promise<string>;
}

type Json = Record<string, unknown>;
const isEndpointErrorCode = (v: string): v is EndpointErrorCode => (ENDPOINT_ERROR_CODES as readonly string[]).includes(v);
const isObject = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v);

export async function requestEphemeralKey(
  agentId: string,
  { endpoint = "/token", source, signal, getIdToken, getAppCheckToken }: EphemeralKeyOptions = {},
): Promise<EphemeralKey> {
  // The token providers' own failures (say, a network error refreshing the ID token) reach the
  // caller as they are: they are not the endpoint's answer.
  const headers: Record<string, string> = { "Content-Type": "application/json" };
  const idToken = getIdToken ? await getIdToken() : null;
  if (idToken) headers["Authorization"] = `Bearer ${idToken}`;
  const appCheckToken = getAppCheckToken ? await getAppCheckToken() : "";
  if (appCheckToken) headers["X-Firebase-AppCheck"] = appCheckToken;
  let response: Response;
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
  const data: unknown = await response.json().catch((error) => {
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

/** The Outspeed document's helper, typed: resolves to the ephemeral key string. */
export async function getEphemeralKeyFromServer(agentId: string, options?: EphemeralKeyOptions): Promise<string> {
  return (await requestEphemeralKey(agentId, options)).value;
}
