// What went wrong, in the page's words: an API error (the server's own text is shown beside
// it), an upload refusal, an error code.
import { errorKey } from "./i18n.js";
import { t } from "./stores/ui.js";

export const MB = 1024 * 1024;

export function codeText(code) {
  return t(errorKey(code));
}

export function apiErrorText(err) {
  const d = err.details || {};
  if (err.code === "validation_error" && d.field === "file" && d.reason) return uploadText(d);
  if (err.code === "validation_error") {
    const field = d.field || (d.errors && d.errors.length ? d.errors[0].field : "");
    return field ? t("err.validation_field", { field }) : t("err.validation_error");
  }
  if (err.code === "payload_too_large") return t("err.payload_too_large", { max: Math.floor((d.limit || Alpine.store("catalog").uploadLimits.max_bytes) / MB) });
  if (err.code === "rate_limit_exceeded" && err.retryAfter) return t("err.rate_limit_after", { n: err.retryAfter });
  return codeText(err.code);
}

// an upload refusal from its `details` (the server's, or the page's own size check)
export function uploadText(d) {
  const side = Math.floor(Math.sqrt(d.max_pixels || Alpine.store("catalog").uploadLimits.max_pixels));
  const values = {
    too_large: { size: Math.ceil((d.size * 10) / MB) / 10, max: Math.round((d.max_bytes / MB) * 10) / 10 },
    too_many_pixels: {
      got: d.width && d.height ? d.width + "×" + d.height : pixelsText(d.pixels),
      max: side + "×" + side,
      limit: pixelsText(d.max_pixels || side * side),
    },
    too_small: { width: d.width, height: d.height, min: d.min_side },
    ratio: { width: d.width, height: d.height, max: d.max_ratio },
    format: { format: d.format },
  };
  return t("upload." + d.reason, values[d.reason] || {}, t("err.validation_error"));
}

function pixelsText(pixels) {
  const n = Alpine.store("ui").lang === "zh-CN" ? Math.round(pixels / 1e4) : Math.round(pixels / 1e5) / 10;
  return t("upload.pixels", { n });
}
