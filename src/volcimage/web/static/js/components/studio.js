// Alpine.data("studio"): the page's root (index.html's outer x-data): its start-up, the top bar,
// the credentials banner, the status bar, the help and settings dialogs, and the keys. Every
// other component sits inside it, so its `t` is theirs too.
import { keys } from "../keys.js";
import { t } from "../stores/ui.js";

export function studio() {
  return {
    ...keys,
    t,

    async init() {
      const session = this.$store.session;
      this.$watch("$store.ui.lang", (lang) => {
        localStorage.setItem("volcimage.lang", lang);
        document.documentElement.lang = lang;
      });
      await session.load();
      if (session.access.signed_in) await session.loadAll();
      else session.askToSignIn();
      this.$store.ui.ready = true;
      setInterval(() => session.loadInfo(), 30000);
      Alpine.effect(() => {
        document.title = this.tabTitle();
      });
    },
    tabTitle() {
      const n = this.$store.tasks.active().length;
      const base = this.$store.ui.baseTitle;
      return n ? t("title.running", { n }) + " · " + base : base;
    },
    openUsers() {
      this.$store.ui.dialog = "users";
    },

    // ---- the server's state: the status bar, the demo badge, the banner ---------------------------
    quotaText() {
      const info = this.$store.session.info;
      const q = info.user_quota || info.quota || { used: 0, limit: null };
      return q.limit ? q.used + " / " + q.limit : t("status.quotaUnlimited", { n: q.used });
    },
    // Each provider as the server reports it: real, demo or not_configured (an older server
    // reports only `mode`, which then stands for all of them).
    providers() {
      return Object.entries(this.$store.session.info.providers || {});
    },
    // a provider's state as the page shows it: a real one whose key was refused is "refused"
    shownState(p) {
      return p.state === "real" && p.connected === false ? "refused" : p.state;
    },
    providersIn(state) {
      return this.providers().filter(([, p]) => this.shownState(p) === state);
    },
    providerNames(entries) {
      return entries.map(([name]) => t("provider." + name)).join(t("list.separator"));
    },
    allProviders(state) {
      const all = this.providers();
      return all.length ? all.every(([, p]) => this.shownState(p) === state) : this.$store.session.info.mode === state;
    },
    modeText() {
      if (!this.$store.session.info.mode) return "";
      if (this.allProviders("demo")) return t("mode.demo");
      if (this.allProviders("real")) return t("mode.real");
      return this.providers().map(([name, p]) => t("provider." + name) + " " + t("providerState." + this.shownState(p))).join(" · ");
    },
    // `short`: a phone's top bar has room for a word, not the names
    demoBadge(short) {
      if (this.allProviders("demo")) return this.$store.session.info.mode ? t("mode.demoBadge") : "";
      const demo = this.providersIn("demo");
      if (!demo.length) return "";
      return short ? t("mode.partDemoShort") : t("mode.partDemoBadge", { names: this.providerNames(demo) });
    },
    needsCredentials() {
      const info = this.$store.session.info;
      return Boolean(info.mode) && !info.api_connected;
    },
    credentialsBanner() {
      const missing = this.providersIn("not_configured");
      const [key, named] = missing.length ? ["notConfigured", missing] : ["refused", this.providersIn("refused")];
      if (!named.length) return { title: t("banner.noCredentials"), how: t("banner.noCredentialsHow") };
      const vars = named.flatMap(([, p]) => p.credentials).join(" / ");
      return {
        title: t("banner." + key, { names: this.providerNames(named) }),
        how: t("banner." + key + "How", { vars }),
      };
    },
    connectionText() {
      if (!this.$store.session.access.signed_in) return t("status.signedOut");
      if (!this.$store.tasks.connected) return t("status.reconnecting");
      if (this.$store.session.info.api_connected) return t("status.connected");
      return this.providersIn("refused").length ? t("status.refused") : t("status.noCredentials");
    },
  };
}
