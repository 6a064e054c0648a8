// The page's scripts, ES modules served as they are: the stores and components, registered
// with Alpine (its CSP build, loaded after this module) as it starts. index.html places the
// components; templates reach the stores as $store.<name>.
import { login, password } from "./components/account.js";
import { admin } from "./components/admin.js";
import { gallery } from "./components/gallery.js";
import { history } from "./components/history.js";
import { params } from "./components/params.js";
import { studio } from "./components/studio.js";
import { viewer, viewerStore } from "./components/viewer.js";
import { catalog } from "./stores/catalog.js";
import { session } from "./stores/session.js";
import { tasks } from "./stores/tasks.js";
import { ui } from "./stores/ui.js";
import { toasts } from "./toasts.js";

document.addEventListener("alpine:init", () => {
  Alpine.store("ui", ui());
  Alpine.store("toasts", toasts());
  Alpine.store("session", session());
  Alpine.store("catalog", catalog());
  Alpine.store("tasks", tasks());
  Alpine.store("viewer", viewerStore());
  Alpine.data("studio", studio);
  Alpine.data("params", params);
  Alpine.data("gallery", gallery);
  Alpine.data("history", history);
  Alpine.data("viewer", viewer);
  Alpine.data("login", login);
  Alpine.data("password", password);
  Alpine.data("admin", admin);
});
