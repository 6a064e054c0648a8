// One task as the page shows it, wherever it is (a gallery card, the task list, the history,
// the viewer): its state and progress in words, its parameters in a line. `cards` is the lot
// for templates, spread into the components that show tasks.
import { t } from "./stores/ui.js";
import { codeText } from "./words.js";

const ACTIVE = ["pending", "processing", "retrying"];
export const FINAL = ["completed", "failed", "cancelled"];
export const DRAGGED_IMAGE = "application/x-volcimage-image"; // a stored image dragged to the references

export function isActive(task) {
  return ACTIVE.includes(task.status);
}

// completed with fewer images than asked: a group cut off or ended early, or some refused
function isPartial(task) {
  return task.status === "completed" && task.images.length < task.num_images;
}

export function statusText(task) {
  return isPartial(task) ? t("status.partial", { made: task.images.length, asked: task.num_images }) : t("status." + task.status);
}

// `image`: the viewer's, whose own size and seed are shown (each image has its own)
function paramsLine(task, image) {
  const size = image || (task.images.length ? task.images[0] : task); // adaptive sizes are known after
  const parts = [Alpine.store("catalog").modelName(task.model), size.width + "×" + size.height];
  const seed = image ? image.seed : task.seed;
  if (seed !== null && seed !== undefined) parts.push(t("param.seed") + " " + seed);
  if (task.scale !== null && task.scale !== undefined) parts.push(t("param.scale") + " " + task.scale);
  if (task.steps !== null && task.steps !== undefined) parts.push(t("param.steps") + " " + task.steps);
  return parts.join(" · ");
}

function slots(task) {
  const list = task.images.map((image) => ({ key: image.image_id, image }));
  // placeholders only while images may still come: an ended task keeps none
  const missing = isActive(task) ? Math.max(0, task.num_images - task.images.length) : 0;
  for (let i = 0; i < missing; i++) list.push({ key: task.task_id + "-slot-" + i, image: null });
  return list;
}

// a task's error in the page's words; its code and the upstream's text are the detail
function failureText(task) {
  const error = task.error || {};
  return error.code ? codeText(error.code) : t("status.failed");
}

function failureDetail(task) {
  const error = task.error || {};
  return [error.code ? t("err.detailCode", { code: error.code }) : "", error.message || ""].filter(Boolean).join(" · ");
}

// ---- progress: time under way against what tasks like it took here ----------------------------
function elapsedSeconds(task) {
  const from = task.status === "pending" || !task.started_at ? task.created_at : task.started_at;
  return Math.max(0, Math.floor((Alpine.store("tasks").now - Date.parse(from)) / 1000));
}

// The stored images move the bar; between them it creeps towards 90 % as the usual time
// passes, so a long upstream call does not look stuck.
function progressWidth(task) {
  if (task.status !== "processing" || !task.estimated_seconds) return task.progress;
  const guessed = 10 + 80 * Math.min(1, elapsedSeconds(task) / task.estimated_seconds);
  return Math.max(task.progress, Math.round(guessed));
}

function duration(seconds) {
  if (seconds < 60) return t("time.seconds", { n: seconds });
  return t("time.minutes", { m: Math.floor(seconds / 60), s: seconds % 60 });
}

function timingText(task) {
  const estimate = task.estimated_seconds;
  if (task.status === "pending") return estimate ? t("progress.queued", { e: duration(estimate) }) : "";
  if (task.status !== "processing") return "";
  const elapsed = elapsedSeconds(task);
  if (!estimate) return duration(elapsed);
  const key = elapsed > estimate * 1.5 ? "progress.slow" : "progress.timing";
  return t(key, { s: duration(elapsed), e: duration(estimate) });
}

function timeOf(iso) {
  return new Date(iso).toLocaleTimeString(Alpine.store("ui").lang, { hour: "2-digit", minute: "2-digit" });
}

// whose task it is, where that is news: an admin looking at someone else's
function otherOwner(task) {
  const user = Alpine.store("session").access.user;
  return task.owner && task.owner !== (user ? user.username : null) ? task.owner : "";
}

// a stored image dragged from the gallery or history, to drop on the references
function dragImage(event, image) {
  event.dataTransfer.setData(DRAGGED_IMAGE, JSON.stringify({ id: image.image_id, thumb: image.thumbnail_url }));
  event.dataTransfer.effectAllowed = "copy";
}

function downloadUrl(image) {
  return image.url + "?download=1";
}

export function toggleFavorite(image) {
  return Alpine.store("tasks").updateImage(image, { favorite: !image.favorite });
}

export const cards = {
  isActive,
  isPartial,
  statusText,
  paramsLine,
  slots,
  failureText,
  failureDetail,
  progressWidth,
  timingText,
  timeOf,
  otherOwner,
  dragImage,
  downloadUrl,
  toggleFavorite,
};
