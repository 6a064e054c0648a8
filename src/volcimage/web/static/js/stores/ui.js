// Alpine.store("ui"): where the page is (tab, side panel, dialog) and this browser's choices
// (language, theme, notifications). Every component reads it; `t` speaks in its language.
import { initialLang, translate } from "../i18n.js";

const THEMES = ["system", "light", "dark"];

export function t(key, values, fallback) {
  return translate(Alpine.store("ui").lang, key, values, fallback);
}

// A word to the part of the page that holds what it is about (the form, the search field, the
// sign-in dialog), from parts that do not hold it: a window event "volcimage:<name>".
export function signal(name, detail) {
  window.dispatchEvent(new CustomEvent("volcimage:" + name, { detail }));
}

export function onSignal(name, handler) {
  window.addEventListener("volcimage:" + name, (event) => handler(event.detail));
}

export function ui() {
  return {
    lang: initialLang(),
    theme: localStorage.getItem("volcimage.theme") || "system",
    notify: localStorage.getItem("volcimage.notify") === "1",
    tab: "params", // on a phone: params, gallery or tasks
    side: "tasks", // tasks or history
    dialog: "", // help, settings, login or users
    ready: false, // signed in (or asked to) and the first answers in
    baseTitle: document.title,

    init() {
      this.applyTheme();
      window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => this.applyTheme());
      document.documentElement.lang = this.lang;
    },
    toggleLang() {
      this.lang = this.lang === "zh-CN" ? "en" : "zh-CN";
    },
    cycleTheme() {
      this.theme = THEMES[(THEMES.indexOf(this.theme) + 1) % THEMES.length];
      localStorage.setItem("volcimage.theme", this.theme);
      this.applyTheme();
    },
    applyTheme() {
      window.volcTheme.apply(this.theme);
    },
    themeLabel() {
      return t("theme." + this.theme);
    },
    closeDialog() {
      if (this.dialog !== "login") this.dialog = "";
    },
    async toggleNotify() {
      if (this.notify) {
        this.notify = false;
        localStorage.removeItem("volcimage.notify");
        return;
      }
      // the toasts by their store: toasts.js reaches this file through words.js
      if (!("Notification" in window)) {
        Alpine.store("toasts").show(t("notify.unsupported"), "error");
        return;
      }
      const answer = Notification.permission === "granted" ? "granted" : await Notification.requestPermission();
      this.notify = answer === "granted";
      if (this.notify) localStorage.setItem("volcimage.notify", "1");
      else Alpine.store("toasts").show(t("notify.denied"), "error");
    },
  };
}
