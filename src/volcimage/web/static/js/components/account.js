// The signed-in person's own dialogs: Alpine.data("login") (an API key, or a username and
// password) and Alpine.data("password") (a new password, in the settings).
import { request } from "../api.js";
import { onSignal, t } from "../stores/ui.js";
import { toast, toastError } from "../toasts.js";

export function login() {
  return {
    apiKey: "",
    username: "",
    password: "",
    loginError: "",

    init() {
      onSignal("sign-in", () => this.$nextTick(() => {
        const field = this.accounts() ? this.$refs.username : this.$refs.apiKey;
        if (field) field.focus();
      }));
    },
    accounts() {
      return this.$store.session.access.mode === "accounts";
    },
    canSubmitLogin() {
      return this.accounts() ? Boolean(this.username && this.password) : Boolean(this.apiKey);
    },
    async login() {
      const session = this.$store.session;
      this.loginError = "";
      const body = this.accounts() ? { username: this.username, password: this.password } : { api_key: this.apiKey };
      try {
        session.setAccess(await request("POST", "/session", body));
      } catch (err) {
        this.loginError = err.status === 401 ? t(this.accounts() ? "login.wrongPassword" : "login.wrong") : err.message;
        return;
      }
      this.apiKey = "";
      this.password = "";
      this.$store.ui.dialog = "";
      await session.loadAll();
    },
  };
}

export function password() {
  return {
    passwords: { current: "", next: "" },

    async changePassword() {
      try {
        await request("PUT", "/session/password", { current_password: this.passwords.current, new_password: this.passwords.next });
        this.passwords = { current: "", next: "" };
        toast(t("account.passwordChanged"), "success");
      } catch (err) {
        toastError(err);
      }
    },
  };
}
