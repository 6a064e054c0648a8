// Alpine.store("toasts"): short notes over the gallery. At most MAX_TOASTS at once, the oldest
// giving way; while the viewer is open, only the newest (it sits clear of the viewer's controls).
import { apiErrorText } from "./words.js";

const MAX_TOASTS = 3;
export const UNDO_MS = 6000; // how long a toast's action (an undo) is offered

export function toasts() {
  return {
    list: [],

    show(message, kind, action, detail) {
      const id = Date.now() + Math.random();
      this.list = [...this.list, { id, message, detail: detail || "", kind: kind || "info", action: action || null }].slice(-MAX_TOASTS);
      setTimeout(() => this.dismiss(id), action ? UNDO_MS : kind === "error" ? 8000 : 3500);
    },
    shown() {
      return Alpine.store("viewer").isOpen() ? this.list.slice(-1) : this.list;
    },
    dismiss(id) {
      this.list = this.list.filter((toast) => toast.id !== id);
    },
    run(toast) {
      if (toast.action) toast.action.run();
      this.dismiss(toast.id);
    },
  };
}

export function toast(message, kind, action, detail) {
  Alpine.store("toasts").show(message, kind, action, detail);
}

export function toastError(err) {
  if (err.status === 401) return; // the sign-in dialog says it
  toast(apiErrorText(err), "error", null, err.message);
}
