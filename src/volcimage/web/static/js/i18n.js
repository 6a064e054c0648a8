// Every visible string of the page, one dictionary per language (i18n/). zh-CN is the default.
import zh from "./i18n/zh-CN.js";
import en from "./i18n/en.js";

export const dictionaries = { "zh-CN": zh, en };

// Upstream codes are open-ended: one not named in the dictionaries falls into a family by its shape.
const ERROR_FAMILIES = [
  [/^InputText|^5041[23]$/, "InputTextSensitiveContentDetected"],
  [/^InputImage|^5041[1]$|^50518$/, "InputImageSensitiveContentDetected"],
  [/^OutputImage|^50511$|^50519$/, "OutputImageSensitiveContentDetected"],
  [/SensitiveContent|PolicyViolation|RiskDetection|^50512$/, "ContentCheck"],
  [/^5052\d$/, "ContentCheckService"],
  [/RateLimit|RequestBurst|^50429$|^50430$/, "UpstreamRateLimited"],
  [/^5050[01]$/, "InternalServiceError"],
  [/^(InvalidParameter|MissingParameter|InvalidImageURL)|^50400$/, "InvalidParameter"],
  [/^(InvalidEndpoint|ModelNotOpen)/, "ModelNotOpen"],
  [/^(AccessDenied|AccountOverdue|OperationDenied)/, "AccessDenied"],
  [/^(SignatureDoesNotMatch|InvalidAccessKey|MissingAuthenticationToken|InvalidTimestamp|InvalidAuthorization)/, "Credentials"],
  [/^Job[A-Z]/, "JobGone"],
  [/^HTTP5\d\d$/, "UpstreamServerError"],
  [/^HTTP\d{3}$/, "UpstreamHttpError"],
];

export function initialLang() {
  const saved = localStorage.getItem("volcimage.lang");
  return saved && dictionaries[saved] ? saved : "zh-CN";
}

// The key of an error code's words (the API's `error`, a task's `error.code`); `err.unknown`
// for an upstream code of no known shape.
export function errorKey(code) {
  const text = String(code || "");
  if (text && zh["err." + text] !== undefined) return "err." + text;
  const family = ERROR_FAMILIES.find(([shape]) => shape.test(text));
  return family ? "err." + family[1] : "err.unknown";
}

// A missing key shows the fallback if one is given, else the key (so gaps are visible).
export function translate(lang, key, values, fallback) {
  const dict = dictionaries[lang] || zh;
  let text = dict[key];
  if (text === undefined) return fallback !== undefined ? fallback : key;
  for (const [name, value] of Object.entries(values || {})) text = text.split("{" + name + "}").join(String(value));
  return text;
}

// for the browser tests, which check every error code the server can send has words here
window.volcI18n = { dictionaries, errorKey };
