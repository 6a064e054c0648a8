// Alpine.data("admin"): the users dialog, an admin's: every account, its role, today's images
// and quota; add, promote, disable. It reads the list each time it opens.
import { request } from "../api.js";
import { onSignal, t } from "../stores/ui.js";
import { toast, toastError } from "../toasts.js";

function blankUser() {
  return { username: "", password: "", is_admin: false, daily_image_quota: "" };
}

export function admin() {
  return {
    users: [],
    newUser: blankUser(),

    init() {
      this.$watch("$store.ui.dialog", (dialog) => {
        if (dialog === "users") this.loadUsers();
      });
      onSignal("signed-out", () => (this.users = []));
    },
    async loadUsers() {
      try {
        this.users = await request("GET", "/users");
      } catch (err) {
        toastError(err);
      }
    },
    async createUser() {
      const body = { username: this.newUser.username, password: this.newUser.password, is_admin: this.newUser.is_admin };
      if (this.newUser.daily_image_quota !== "") body.daily_image_quota = Number(this.newUser.daily_image_quota);
      try {
        await request("POST", "/users", body);
        toast(t("users.created", { name: body.username.trim().toLowerCase() }), "success");
        this.newUser = blankUser();
        await this.loadUsers();
      } catch (err) {
        toastError(err);
      }
    },
    async changeUser(user, change) {
      try {
        const updated = await request("PATCH", "/users/" + encodeURIComponent(user.username), change);
        this.users = this.users.map((u) => (u.username === updated.username ? updated : u));
      } catch (err) {
        toastError(err);
      }
    },
    setUserQuota(user, value) {
      this.changeUser(user, value === "" ? { default_quota: true } : { daily_image_quota: Number(value) });
    },
  };
}
