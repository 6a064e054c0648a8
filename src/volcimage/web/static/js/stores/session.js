// Alpine.store("session"): who is signed in (or that no one need be) and what the server says of
// itself (version, providers, quota). A sign-in loads everything the page shows; a sign-out
// drops it.
import { request, setCsrfToken } from "../api.js";
import { toastError } from "../toasts.js";
import { onSignal, signal } from "./ui.js";

export function session() {
  return {
    access: { mode: "open", user: null, signed_in: true },
    info: { version: "", mode: "", api_connected: true, quota: { used: 0, limit: null }, user_quota: null },

    init() {
      onSignal("unauthorized", () => this.askToSignIn()); // sent by api.js
    },
    async load() {
      try {
        this.setAccess(await request("GET", "/session"));
      } catch (err) {
        toastError(err);
      }
    },
    setAccess(data) {
      this.access = data;
      setCsrfToken(data.csrf_token);
    },
    async loadAll() {
      const catalog = Alpine.store("catalog");
      const tasks = Alpine.store("tasks");
      await Promise.all([catalog.loadModels(), this.loadInfo(), tasks.loadGallery(), catalog.loadTags(), catalog.loadTemplates()]);
      await tasks.reloadHistory();
      tasks.connect();
    },
    async loadInfo() {
      try {
        this.info = await request("GET", "/system/info");
      } catch (err) {
        if (err.status !== 401) this.info.api_connected = false;
      }
    },
    askToSignIn() {
      if (this.access.mode === "basic") return; // the browser asks for basic auth itself
      this.access.signed_in = false;
      Alpine.store("ui").dialog = "login";
      signal("sign-in"); // the dialog's field takes the cursor
    },
    async signOut() {
      try {
        await request("DELETE", "/session");
      } catch (err) {
        toastError(err);
        return;
      }
      Alpine.store("tasks").clear();
      Alpine.store("catalog").templates = [];
      // what components hold of the user's (a selection, the user list, a chosen template)
      signal("signed-out");
      this.setAccess({ mode: this.access.mode, user: null, signed_in: false, csrf_token: null });
      this.askToSignIn();
    },
    isAdmin() {
      return Boolean(this.access.user && this.access.user.is_admin);
    },
  };
}
