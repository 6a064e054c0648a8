// The studio page: one Alpine component over the JSON API and its event stream.
// Loaded before Alpine (CSP build): templates call the methods below, never eval'd code.
(function () {
  "use strict";

  const API = "/api/v1";
  const FINAL = ["completed", "failed", "cancelled"];
  const ACTIVE = ["pending", "processing", "retrying"];
  const HISTORY_PAGE = 20;
  const UNDO_MS = 6000;
  const MAX_SEED = 2147483647;
  const MB = 1024 * 1024;
  const MAX_TOASTS = 3;
  const DRAGGED_IMAGE = "application/x-volcimage-image"; // a gallery image dragged to the references
  const EXAMPLES = {
    "zh-CN": ["清晨薄雾中的江南水乡，水墨风格", "一只戴着宇航员头盔的橘猫，电影感光影", "赛博朋克城市夜景，霓虹灯倒映在雨后的街道"],
    en: ["A misty water town at dawn, ink wash painting", "An orange cat in an astronaut helmet, cinematic light", "A cyberpunk street at night, neon reflected in rain"],
  };

  class ApiError extends Error {
    constructor(status, body) {
      super((body && body.message) || "HTTP " + status);
      this.status = status;
      // a proxy's own 413 (an HTML page) is still a body too large
      this.code = (body && body.error) || (status === 413 ? "payload_too_large" : "http_error");
      this.details = (body && body.details) || {};
      this.retryAfter = (body && body.retry_after) || 0;
    }
  }

  // fetch, with a failure to reach the server as an ApiError like any other
  async function send(url, init) {
    try {
      return await fetch(url, init);
    } catch (err) {
      throw new ApiError(0, { error: "network_error", message: String((err && err.message) || err) });
    }
  }

  // The session's CSRF token: every change made with the session cookie carries it.
  let csrfToken = "";
  function guarded(method, headers) {
    if (csrfToken && method !== "GET" && method !== "HEAD") headers["X-CSRF-Token"] = csrfToken;
    return headers;
  }

  async function request(method, path, body) {
    const init = { method, headers: guarded(method, {}) };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await send(API + path, init);
    if (response.status === 401 && !path.startsWith("/session")) window.dispatchEvent(new CustomEvent("volcimage:unauthorized"));
    if (response.status === 204) return null;
    const data = await response.json().catch(() => null);
    if (!response.ok) throw new ApiError(response.status, data);
    return data;
  }

  function ratioLabel(width, height) {
    const gcd = (a, b) => (b ? gcd(b, a % b) : a);
    const d = gcd(width, height);
    const w = width / d;
    const h = height / d;
    return w > 30 || h > 30 ? (width / height).toFixed(2) + ":1" : w + ":" + h;
  }

  function dayKey(iso) {
    const d = new Date(iso);
    return d.getFullYear() + "-" + String(d.getMonth() + 1).padStart(2, "0") + "-" + String(d.getDate()).padStart(2, "0");
  }

  function studio() {
    return {
      lang: window.volcI18n.initialLang(),
      theme: localStorage.getItem("volcimage.theme") || "system",
      models: [],
      uploadLimits: { max_bytes: 10 * MB, max_pixels: 6000 * 6000, min_side: 15, max_ratio: 16 },
      info: { version: "", mode: "", api_connected: true, quota: { used: 0, limit: null }, user_quota: null },
      access: { mode: "open", user: null, signed_in: true },
      users: [],
      templates: [],
      templateChoice: "",
      savingTemplate: false,
      templateName: "",
      newUser: { username: "", password: "", is_admin: false, daily_image_quota: "" },
      passwords: { current: "", next: "" },
      connected: false,
      form: {
        model: "",
        prompt: "",
        negative_prompt: "",
        size: "",
        custom: false,
        width: 1024,
        height: 1024,
        num_images: 1,
        seedMode: "random",
        seed: "",
        steps: "",
        scale: "",
        watermark: false,
        references: [],
        group: false,
      },
      uploading: 0,
      dragging: false,
      submitting: false,
      gallery: [],
      galleryFrom: -Infinity, // the gallery holds every task made after this (ms since epoch)
      catchingUp: false, // a catch-up is under way, and whether another must follow it
      catchUpAgain: false,
      history: { items: [], page: 0, total: 0, loading: false, done: false },
      filters: { q: "", model: "", status: "", favorite: false, tag: "", date: "" },
      tags: [],
      selected: [],
      pendingDeletes: {},
      toasts: [],
      viewer: { open: false, list: [], index: 0, zoom: 1, x: 0, y: 0, dragging: false, tagDraft: "" },
      compare: { picks: [], open: false },
      tab: "params",
      side: "tasks",
      dialog: "",
      events: null,
      ready: false,
      apiKey: "",
      username: "",
      password: "",
      loginError: "",
      now: Date.now(),  // ticks while tasks are under way: their elapsed time
      baseTitle: "",
      notify: localStorage.getItem("volcimage.notify") === "1",

      // ---- start-up -------------------------------------------------------------------------
      async init() {
        this.applyTheme();
        window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => this.applyTheme());
        this.$watch("lang", (value) => {
          localStorage.setItem("volcimage.lang", value);
          document.documentElement.lang = value;
        });
        document.documentElement.lang = this.lang;
        this.$watch("form.model", () => this.onModelChange());
        let searchTimer = null;
        this.$watch("filters", () => {
          clearTimeout(searchTimer);
          searchTimer = setTimeout(() => this.reloadHistory(), 250);
        }, { deep: true });
        window.addEventListener("pagehide", () => this.flushDeletes());
        window.addEventListener("paste", (event) => this.onPaste(event));
        window.addEventListener("volcimage:unauthorized", () => this.askToSignIn());
        await this.loadSession();
        if (this.access.signed_in) await this.loadAll();
        else this.askToSignIn();
        this.ready = true;
        const sentinel = this.$refs.historyEnd;
        if (sentinel) {
          new IntersectionObserver((entries) => {
            if (entries.some((e) => e.isIntersecting)) this.loadMoreHistory();
          }, { root: null, rootMargin: "200px" }).observe(sentinel);
        }
        setInterval(() => this.loadInfo(), 30000);
        this.baseTitle = document.title;
        setInterval(() => {
          if (this.activeTasks().length) this.now = Date.now();
        }, 1000);
        window.Alpine.effect(() => {
          document.title = this.tabTitle();
        });
      },

      async loadAll() {
        await Promise.all([this.loadModels(), this.loadInfo(), this.loadGallery(), this.loadTags(), this.loadTemplates()]);
        await this.reloadHistory();
        this.connect();
      },

      async loadSession() {
        try {
          this.setAccess(await request("GET", "/session"));
        } catch (err) {
          this.toastError(err);
        }
      },
      setAccess(data) {
        this.access = data;
        csrfToken = data.csrf_token || "";
      },
      askToSignIn() {
        if (this.access.mode === "basic") return;  // the browser asks for basic auth itself
        this.access.signed_in = false;
        this.dialog = "login";
        this.$nextTick(() => {
          const field = this.access.mode === "accounts" ? this.$refs.username : this.$refs.apiKey;
          if (field) field.focus();
        });
      },
      closeDialog() {
        if (this.dialog !== "login") this.dialog = "";
      },
      canSubmitLogin() {
        return this.access.mode === "accounts" ? Boolean(this.username && this.password) : Boolean(this.apiKey);
      },
      async login() {
        this.loginError = "";
        const body = this.access.mode === "accounts" ? { username: this.username, password: this.password } : { api_key: this.apiKey };
        try {
          this.setAccess(await request("POST", "/session", body));
          this.apiKey = "";
          this.password = "";
          this.dialog = "";
          await this.loadAll();
        } catch (err) {
          this.loginError = err.status === 401 ? this.t(this.access.mode === "accounts" ? "login.wrongPassword" : "login.wrong") : err.message;
        }
      },
      async logout() {
        try {
          await request("DELETE", "/session");
        } catch (err) {
          this.toastError(err);
          return;
        }
        if (this.events) this.events.close();
        this.gallery = [];
        this.history = { items: [], page: 0, total: 0, loading: false, done: false };
        this.selected = [];
        this.users = [];
        this.templates = [];
        this.templateChoice = "";
        this.setAccess({ mode: this.access.mode, user: null, signed_in: false, csrf_token: null });
        this.askToSignIn();
      },
      isAdmin() {
        return Boolean(this.access.user && this.access.user.is_admin);
      },
      // whose task it is, where that is news: an admin looking at someone else's
      otherOwner(task) {
        const me = this.access.user ? this.access.user.username : null;
        return task.owner && task.owner !== me ? task.owner : "";
      },
      async openUsers() {
        this.dialog = "users";
        try {
          this.users = await request("GET", "/users");
        } catch (err) {
          this.toastError(err);
        }
      },
      async createUser() {
        const body = { username: this.newUser.username, password: this.newUser.password, is_admin: this.newUser.is_admin };
        if (this.newUser.daily_image_quota !== "") body.daily_image_quota = Number(this.newUser.daily_image_quota);
        try {
          await request("POST", "/users", body);
          this.toast(this.t("users.created", { name: body.username.trim().toLowerCase() }), "success");
          this.newUser = { username: "", password: "", is_admin: false, daily_image_quota: "" };
          await this.openUsers();
        } catch (err) {
          this.toastError(err);
        }
      },
      async changeUser(user, change) {
        try {
          const updated = await request("PATCH", "/users/" + encodeURIComponent(user.username), change);
          this.users = this.users.map((u) => (u.username === updated.username ? updated : u));
        } catch (err) {
          this.toastError(err);
        }
      },
      setUserQuota(user, value) {
        this.changeUser(user, value === "" ? { default_quota: true } : { daily_image_quota: Number(value) });
      },
      async changePassword() {
        try {
          await request("PUT", "/session/password", { current_password: this.passwords.current, new_password: this.passwords.next });
          this.passwords = { current: "", next: "" };
          this.toast(this.t("account.passwordChanged"), "success");
        } catch (err) {
          this.toastError(err);
        }
      },

      async loadModels() {
        try {
          const data = await request("GET", "/models");
          this.models = data.models;
          if (data.uploads) this.uploadLimits = data.uploads;
          this.form.model = this.form.model || data.default_model;
          this.onModelChange();
        } catch (err) {
          this.toastError(err);
        }
      },

      async loadInfo() {
        try {
          this.info = await request("GET", "/system/info");
        } catch (err) {
          if (err.status !== 401) this.info.api_connected = false;
        }
      },

      async loadGallery() {
        try {
          const newest = (await request("GET", "/tasks?limit=12")).items;
          this.gallery = newest;
          this.galleryFrom = newest.length < 12 ? -Infinity : Date.parse(newest[newest.length - 1].created_at);
        } catch (err) {
          this.toastError(err);
        }
      },

      async loadTags() {
        try {
          this.tags = await request("GET", "/tags");
        } catch (err) {
          this.tags = [];
        }
      },

      connect() {
        if (this.events) this.events.close();
        const source = new EventSource(API + "/events");
        this.events = source;
        source.addEventListener("ready", () => {
          const wasConnected = this.connected;
          this.connected = true;
          if (!wasConnected && this.gallery.length) this.catchUp();
        });
        source.addEventListener("task", (message) => this.onEvent(JSON.parse(message.data)));
        source.onerror = () => {
          this.connected = false;
        };
      },

      // ---- i18n and theme -------------------------------------------------------------------
      t(key, values, fallback) {
        return window.volcI18n.translate(this.lang, key, values, fallback);
      },
      toggleGroup() {
        this.form.group = !this.form.group;
        this.form.num_images = Math.min(this.form.num_images, this.maxImages());
      },
      toggleLang() {
        this.lang = this.lang === "zh-CN" ? "en" : "zh-CN";
      },
      cycleTheme() {
        const order = ["system", "light", "dark"];
        this.theme = order[(order.indexOf(this.theme) + 1) % order.length];
        localStorage.setItem("volcimage.theme", this.theme);
        this.applyTheme();
      },
      applyTheme() {
        window.volcTheme.apply(this.theme);
      },
      themeLabel() {
        return this.t("theme." + this.theme);
      },

      // ---- the parameters panel -------------------------------------------------------------
      currentModel() {
        return this.models.find((m) => m.id === this.form.model) || null;
      },
      modelDescription() {
        const model = this.currentModel();
        if (!model) return "";
        return this.lang === "zh-CN" && model.description_zh ? model.description_zh : model.description;
      },
      takes(param) {
        const model = this.currentModel();
        return !!model && model.params.includes(param);
      },
      onModelChange() {
        const model = this.currentModel();
        if (!model) return;
        if (!model.size_presets.includes(this.form.size)) this.form.size = model.default_size;
        if (!this.canGroup()) this.form.group = false;
        this.form.num_images = Math.min(this.form.num_images, this.maxImages());
        this.form.references = this.form.references.slice(0, model.max_reference_images);
        this.form.scale = model.scale ? model.scale.default : "";
        this.form.steps = model.steps ? model.steps.default : "";
        if (this.form.custom) this.checkCustomSize();
      },
      adaptiveSize() {
        const model = this.currentModel();
        return !!model && model.size_rule.mode === "adaptive";
      },
      maxRefs() {
        const model = this.currentModel();
        return model ? model.max_reference_images : 0;
      },
      minRefs() {
        const model = this.currentModel();
        return model ? model.min_reference_images : 0;
      },
      refsLabel() {
        return this.t("refs.count", { n: this.form.references.length, max: this.maxRefs() });
      },
      onDrop(event) {
        this.dragging = false;
        const transfer = event.dataTransfer;
        if (!transfer) return;
        const dragged = transfer.getData(DRAGGED_IMAGE);
        if (dragged) this.addReference(JSON.parse(dragged));
        else this.addFiles(transfer.files);
      },
      // a stored image dragged from the gallery or history, to drop on the references
      dragImage(event, image) {
        event.dataTransfer.setData(DRAGGED_IMAGE, JSON.stringify({ id: image.image_id, thumb: image.thumbnail_url }));
        event.dataTransfer.effectAllowed = "copy";
      },
      addReference(ref) {
        if (this.form.references.some((r) => r.id === ref.id)) return;
        if (this.form.references.length + this.uploading >= this.maxRefs()) {
          this.toast(this.t("refs.full", { max: this.maxRefs() }), "error");
          return;
        }
        this.form.references.push(ref);
      },
      onPick(event) {
        this.addFiles(event.target.files || []);
        event.target.value = "";
      },
      onPaste(event) {
        if (!this.maxRefs() || !event.clipboardData) return;
        const files = [...event.clipboardData.files].filter((f) => f.type.startsWith("image/"));
        if (files.length) {
          event.preventDefault();
          this.addFiles(files);
        }
      },
      async addFiles(files) {
        for (const file of [...files]) {
          if (this.form.references.length + this.uploading >= this.maxRefs()) {
            this.toast(this.t("refs.full", { max: this.maxRefs() }), "error");
            return;
          }
          const limit = this.uploadLimits.max_bytes;
          if (file.size > limit) {  // the server would refuse it unread: say so before sending it
            const reason = this.uploadText({ reason: "too_large", size: file.size, max_bytes: limit });
            this.toast(this.t("upload.named", { name: file.name, reason }), "error");
            continue;
          }
          this.uploading++;
          try {
            const body = new FormData();
            body.append("file", file);
            const response = await send(API + "/uploads", { method: "POST", body, headers: guarded("POST", {}) });
            const data = await response.json().catch(() => null);
            if (!response.ok) throw new ApiError(response.status, data);
            this.form.references.push({ id: data.upload_id, thumb: data.thumbnail_url });
          } catch (err) {
            if (err.status === 401) continue;
            this.toast(this.t("upload.named", { name: file.name, reason: this.apiErrorText(err) }), "error", null, err.message);
          } finally {
            this.uploading--;
          }
        }
      },
      useAsReference(image) {
        let switched = "";
        if (!this.maxRefs()) {
          const capable = this.models.find((m) => m.max_reference_images > 0 && m.size_rule.mode !== "adaptive");
          if (!capable) return;
          switched = this.t("refs.switched", { from: this.modelName(this.form.model), to: capable.name });
          this.form.model = capable.id;
        }
        this.$nextTick(() => {
          this.closeViewer();
          this.tab = "params";
          if (this.form.references.some((r) => r.id === image.image_id)) return;
          if (this.form.references.length >= this.maxRefs()) this.form.references.shift();
          this.form.references.push({ id: image.image_id, thumb: image.thumbnail_url });
          this.toast(switched || this.t("toast.referenceAdded"), switched ? "info" : "success");
        });
      },
      removeReference(ref) {
        this.form.references = this.form.references.filter((r) => r.id !== ref.id);
      },
      sizeOptions() {
        const model = this.currentModel();
        if (!model) return [];
        // by shape, tall to wide, then by size: the 1:1 chips side by side, smallest first
        return model.size_presets
          .map((value) => {
            const [w, h] = value.split("x").map(Number);
            return { value, ratio: ratioLabel(w, h), w, h };
          })
          .sort((a, b) => a.w / a.h - b.w / b.h || a.w * a.h - b.w * b.h);
      },
      pickSize(value) {
        this.form.custom = false;
        this.form.size = value;
      },
      useCustomSize() {
        const [w, h] = this.dimensions();
        this.form.width = w;
        this.form.height = h;
        this.form.custom = true;
      },
      dimensions() {
        if (this.form.custom) return [Number(this.form.width), Number(this.form.height)];
        return (this.form.size || "1024x1024").split("x").map(Number);
      },
      checkCustomSize() {
        const model = this.currentModel();
        if (!model || !this.form.custom) return "";
        const [w, h] = this.dimensions();
        const rule = model.size_rule;
        if (!Number.isInteger(w) || !Number.isInteger(h) || w < 1 || h < 1) return this.t("size.invalid");
        if (rule.mode === "sides") {
          if (w < rule.min_side || h < rule.min_side || w > rule.max_side || h > rule.max_side) {
            return this.t("size.sides", { min: rule.min_side, max: rule.max_side });
          }
          return "";
        }
        const pixels = w * h;
        if (pixels < rule.min_pixels || pixels > rule.max_pixels) {
          return this.t("size.area", { min: Math.ceil(Math.sqrt(rule.min_pixels)), max: Math.floor(Math.sqrt(rule.max_pixels)) });
        }
        const ratio = w / h;
        if ((rule.min_ratio && ratio < rule.min_ratio) || (rule.max_ratio && ratio > rule.max_ratio)) {
          return this.t("size.ratio", { a: Math.round(1 / rule.min_ratio), b: rule.max_ratio });
        }
        return "";
      },
      promptLimit() {
        const model = this.currentModel();
        return model ? model.max_prompt_length : 1000;
      },
      promptTooLong() {
        return this.form.prompt.length > this.promptLimit();
      },
      canGroup() {
        const model = this.currentModel();
        return !!model && model.max_group_images > 0;
      },
      maxImages() {
        const model = this.currentModel();
        if (!model) return 4;
        if (this.form.group && this.canGroup()) return model.max_group_images - this.form.references.length;
        return model.max_images;
      },
      cost() {
        const model = this.currentModel();
        if (!model) return "";
        const total = model.price_per_image * this.form.num_images;
        return (model.currency === "CNY" ? "¥" : model.currency + " ") + total.toFixed(2);
      },
      costText() {
        const n = Number(this.form.num_images);
        return this.t(n === 1 ? "param.costOne" : "param.cost", { cost: this.cost(), n });
      },
      canGenerate() {
        return !this.submitting && !this.blockReason();
      },
      // something to fix, not just the prompt still to write or an upload under way
      blockIsProblem() {
        return !this.uploading && Boolean(this.form.prompt.trim()) && Boolean(this.blockReason());
      },
      // why Generate is off, said beside it and by Ctrl+Enter; "" when it is on
      blockReason() {
        if (this.uploading) return this.t("why.uploading");
        if (!this.form.prompt.trim()) return this.t("why.prompt");
        if (this.promptTooLong()) return this.t("why.promptTooLong", { n: this.form.prompt.length, max: this.promptLimit() });
        if (this.form.references.length < this.minRefs()) return this.t("refs.needed", { n: this.minRefs() });
        const size = this.checkCustomSize();
        return size ? this.t("why.size", { reason: size }) : "";
      },
      randomSeed() {
        return Math.floor(Math.random() * MAX_SEED);
      },
      newSeed() {
        this.form.seedMode = "fixed";
        this.form.seed = this.randomSeed();
      },
      requestBody() {
        const [width, height] = this.dimensions();
        const body = {
          prompt: this.form.prompt.trim(),
          model: this.form.model,
          num_images: Number(this.form.num_images),
        };
        if (!this.adaptiveSize()) Object.assign(body, { width, height });
        if (this.maxRefs()) body.reference_images = this.form.references.map((r) => r.id);
        if (this.form.group && this.canGroup()) body.group = true;
        if (this.takes("watermark")) body.watermark = !!this.form.watermark;
        if (this.takes("negative_prompt") && this.form.negative_prompt.trim()) body.negative_prompt = this.form.negative_prompt.trim();
        if (this.takes("seed")) body.seed = this.form.seedMode === "fixed" && this.form.seed !== "" ? Number(this.form.seed) : this.randomSeed();
        if (this.takes("scale") && this.form.scale !== "") body.scale = Number(this.form.scale);
        if (this.takes("steps") && this.form.steps !== "") body.steps = Number(this.form.steps);
        return body;
      },
      async generate() {
        if (this.submitting) return;
        const reason = this.blockReason();
        if (reason) {
          this.toast(reason, "error");
          return;
        }
        this.submitting = true;
        try {
          const created = await request("POST", "/generate", this.requestBody());
          const task = await request("GET", "/task/" + created.task_id);
          this.upsert(task);  // its card says it is queued: no toast
          this.tab = "gallery";
        } catch (err) {
          this.toastError(err);
        } finally {
          this.submitting = false;
        }
      },
      useExample(text) {
        this.form.prompt = text;
        this.tab = "params"; // on a phone the prompt is on its own tab
        this.$nextTick(() => this.$refs.prompt && this.$refs.prompt.focus());
      },
      examples() {
        return EXAMPLES[this.lang] || EXAMPLES.en;
      },
      // one image again: its own seed and a count of one, not the whole task paid for again
      remixImage(entry) {
        if (!entry) return;
        const params = { ...(entry.task.params || {}), group: false };
        if (entry.image.seed === null || entry.image.seed === undefined) this.form.seedMode = "random";
        this.remix({ ...entry.task, params, num_images: 1, seed: entry.image.seed });
      },
      remix(task) {
        if (!task) return;
        this.fillForm(task, () => {
          this.closeViewer();
          this.tab = "params";
          this.toast(this.t("toast.remixed"), "success");
        });
      },
      // A task or a template into the form: what the source does not say is left as it is.
      fillForm(source, done) {
        if (source.model && this.models.some((m) => m.id === source.model)) this.form.model = source.model;
        this.$nextTick(() => {
          const params = source.params || {};
          this.form.prompt = source.prompt;
          this.form.negative_prompt = source.negative_prompt || "";
          if (source.width && source.height) {
            const size = source.width + "x" + source.height;
            const model = this.currentModel();
            if (model && model.size_presets.includes(size)) {
              this.form.custom = false;
              this.form.size = size;
            } else {
              this.form.custom = true;
              this.form.width = source.width;
              this.form.height = source.height;
            }
          }
          if (source.num_images) this.form.num_images = Math.min(source.num_images, this.maxImages());
          if (source.seed !== null && source.seed !== undefined) {
            this.form.seedMode = "fixed";
            this.form.seed = source.seed;
          }
          if (source.scale !== null && source.scale !== undefined) this.form.scale = source.scale;
          if (source.steps !== null && source.steps !== undefined) this.form.steps = source.steps;
          this.form.watermark = !!params.watermark;
          this.form.group = !!params.group;
          if (params.reference_images) {
            this.form.references = params.reference_images.map((r) => ({
              id: r.id,
              thumb: API + (r.kind === "upload" ? "/uploads/" : "/images/") + r.id + "/thumbnail",
            }));
          }
          done();
        });
      },

      // ---- prompt templates -----------------------------------------------------------------
      async loadTemplates() {
        try {
          this.templates = await request("GET", "/templates");
        } catch (err) {
          this.templates = [];
        }
      },
      applyTemplate(templateId) {
        const template = this.templates.find((x) => x.template_id === templateId);
        if (!template) return;
        const p = template.params || {};
        const source = { model: template.model, prompt: template.prompt, negative_prompt: template.negative_prompt, params: { watermark: p.watermark, group: p.group } };
        for (const key of ["width", "height", "num_images", "seed", "scale", "steps"]) source[key] = p[key];
        this.fillForm(source, () => this.toast(this.t("template.applied", { name: template.name }), "success"));
      },
      startSaveTemplate() {
        this.savingTemplate = true;
        this.templateName = "";
        this.$nextTick(() => this.$refs.templateName && this.$refs.templateName.focus());
      },
      async saveTemplate() {
        const name = this.templateName.trim();
        if (!name) return;
        const body = this.requestBody();
        const params = {};
        for (const key of ["width", "height", "num_images", "steps", "scale", "watermark", "group"]) {
          if (body[key] !== undefined) params[key] = body[key];
        }
        if (this.form.seedMode === "fixed" && body.seed !== undefined) params.seed = body.seed;
        try {
          const saved = await request("POST", "/templates", { name, prompt: body.prompt, negative_prompt: body.negative_prompt || null, model: body.model, params });
          this.templates = [saved, ...this.templates];
          this.templateChoice = saved.template_id;
          this.savingTemplate = false;
          this.toast(this.t("template.saved", { name: saved.name }), "success");
        } catch (err) {
          this.toastError(err);
        }
      },
      async deleteTemplate() {
        const template = this.templates.find((x) => x.template_id === this.templateChoice);
        if (!template) return;
        try {
          await request("DELETE", "/templates/" + template.template_id);
          this.templates = this.templates.filter((x) => x.template_id !== template.template_id);
          this.templateChoice = "";
          this.toast(this.t("template.deleted", { name: template.name }), "success");
        } catch (err) {
          this.toastError(err);
        }
      },

      // ---- tasks and events -----------------------------------------------------------------
      onEvent(event) {
        if (event.type === "events.missed") {
          this.catchUp();
          return;
        }
        if (event.type === "task.deleted") {
          this.dropTask(event.task.task_id);
          return;
        }
        if (event.type === "image.updated") {
          this.patchImage(event.image);
          return;
        }
        if (!event.task || !event.task.status) return;
        const task = event.task;
        const before = this.findTask(task.task_id);
        this.upsert(task);
        // the task's card says how it ended: no toast
        if (before && !FINAL.includes(before.status) && FINAL.includes(task.status)) this.loadInfo();
      },
      // Events were lost (the stream dropped, or the server's were): the 50 newest tasks are read
      // again and the page made to agree with them: shown ones replaced, missed new ones put in
      // their place, deleted ones dropped. One at a time: notices that come meanwhile (several
      // processes may send one) make a single further round.
      async catchUp() {
        if (this.catchingUp) {
          this.catchUpAgain = true;
          return;
        }
        this.catchingUp = true;
        try {
          do {
            this.catchUpAgain = false;
            await this.catchUpOnce();
          } while (this.catchUpAgain);
        } finally {
          this.catchingUp = false;
        }
      },
      async catchUpOnce() {
        // by the copy findTask gives (the gallery's, where both lists hold one): judged by the
        // other, a task both show was never "still the one shown", and a deleted one stayed
        const shownBefore = new Map([...this.history.items, ...this.gallery].map((t) => [t.task_id, t]));
        let newest;
        try {
          newest = (await request("GET", "/tasks?limit=50")).items;
        } catch (err) {
          this.toastError(err);
          return;
        }
        const listed = new Set(newest.map((t) => t.task_id));
        // every task made after the oldest of the 50 is among them, unless it was deleted; one
        // shown only since the answer was asked for is not judged by it
        const whole = newest.length < 50 ? -Infinity : Date.parse(newest[newest.length - 1].created_at);
        for (const [taskId, task] of shownBefore) {
          const still = this.findTask(taskId) === task;
          if (still && Date.parse(task.created_at) > whole && !listed.has(taskId)) this.dropTask(taskId);
        }
        for (const task of newest) {
          if (this.findTask(task.task_id)) this.replaceShown(task);
          else if (Date.parse(task.created_at) > this.galleryFrom && !this.pendingDeletes[task.task_id]) this.insertShown(task);
        }
        this.loadInfo();
      },
      // the task where it is shown, unless what is shown is newer
      replaceShown(task) {
        if (this.isStale(task)) return;
        for (const list of [this.gallery, this.history.items]) {
          const i = list.findIndex((t) => t.task_id === task.task_id);
          if (i >= 0) list.splice(i, 1, task);
        }
      },
      // a task the page missed, where its age puts it in the lists (both newest first)
      insertShown(task) {
        const made = Date.parse(task.created_at);
        const place = (list) => {
          const i = list.findIndex((t) => Date.parse(t.created_at) < made);
          return i < 0 ? list.length : i;
        };
        this.gallery.splice(place(this.gallery), 0, task);
        const h = this.history;
        const at = place(h.items);
        if (!this.filtersActive() && (at < h.items.length || h.done)) {
          h.items.splice(at, 0, task);
          h.total++;
        }
      },
      // Answers and events can arrive out of order: an older state never replaces a newer one.
      isStale(task) {
        const known = this.findTask(task.task_id);
        return Boolean(known) && Date.parse(known.updated_at) > Date.parse(task.updated_at);
      },
      findTask(taskId) {
        return this.gallery.find((t) => t.task_id === taskId) || this.history.items.find((t) => t.task_id === taskId);
      },
      // a task as an event shows it: replaced where shown, else new on top
      upsert(task) {
        if (this.isStale(task)) return;
        const known = this.findTask(task.task_id);
        if (known && !FINAL.includes(known.status) && FINAL.includes(task.status)) this.notifyEnded(task);
        const i = this.gallery.findIndex((t) => t.task_id === task.task_id);
        if (i >= 0) this.gallery.splice(i, 1, task);
        else this.gallery.unshift(task);
        const j = this.history.items.findIndex((t) => t.task_id === task.task_id);
        if (j >= 0) this.history.items.splice(j, 1, task);
        else if (!this.filtersActive()) {
          this.history.items.unshift(task);
          this.history.total++;
        }
      },
      dropTask(taskId) {
        this.gallery = this.gallery.filter((t) => t.task_id !== taskId);
        const before = this.history.items.length;
        this.history.items = this.history.items.filter((t) => t.task_id !== taskId);
        this.history.total -= before - this.history.items.length;
      },
      patchImage(image) {
        for (const list of [this.gallery, this.history.items]) {
          for (const task of list) {
            const i = task.images.findIndex((img) => img.image_id === image.image_id);
            if (i >= 0) task.images.splice(i, 1, image);
          }
        }
        this.viewer.list = this.viewer.list.map((entry) => (entry.image.image_id === image.image_id ? { task: entry.task, image } : entry));
      },
      activeTasks() {
        return this.gallery.filter((t) => ACTIVE.includes(t.status));
      },
      isActive(task) {
        return ACTIVE.includes(task.status);
      },
      slots(task) {
        const slots = task.images.map((image) => ({ key: image.image_id, image }));
        // placeholders only while images may still come: an ended task keeps none
        const missing = this.isActive(task) ? Math.max(0, task.num_images - task.images.length) : 0;
        for (let i = 0; i < missing; i++) slots.push({ key: task.task_id + "-slot-" + i, image: null });
        return slots;
      },
      statusText(task) {
        return this.isPartial(task) ? this.t("status.partial", this.madeOfAsked(task)) : this.t("status." + task.status);
      },
      // completed with fewer images than asked: a group cut off or ended early, or some refused
      isPartial(task) {
        return task.status === "completed" && task.images.length < task.num_images;
      },
      madeOfAsked(task) {
        return { made: task.images.length, asked: task.num_images };
      },
      // a task's error in the page's words; its code and the upstream's text are the detail
      failureText(task) {
        const error = task.error || {};
        return error.code ? this.codeText(error.code) : this.t("status.failed");
      },
      failureDetail(task) {
        const error = task.error || {};
        return [error.code ? this.t("err.detailCode", { code: error.code }) : "", error.message || ""].filter(Boolean).join(" · ");
      },
      codeText(code) {
        return this.t(window.volcI18n.errorKey(code));
      },
      // an API error in the page's words (the server's own text is shown beside it)
      apiErrorText(err) {
        const d = err.details || {};
        if (err.code === "validation_error" && d.field === "file" && d.reason) return this.uploadText(d);
        if (err.code === "validation_error") {
          const field = d.field || (d.errors && d.errors.length ? d.errors[0].field : "");
          return field ? this.t("err.validation_field", { field }) : this.t("err.validation_error");
        }
        if (err.code === "payload_too_large") return this.t("err.payload_too_large", { max: Math.floor((d.limit || this.uploadLimits.max_bytes) / MB) });
        if (err.code === "rate_limit_exceeded" && err.retryAfter) return this.t("err.rate_limit_after", { n: err.retryAfter });
        return this.codeText(err.code);
      },
      // an upload refusal from its `details` (the server's, or the page's own size check)
      uploadText(d) {
        const side = Math.floor(Math.sqrt(d.max_pixels || this.uploadLimits.max_pixels));
        const values = {
          too_large: { size: Math.ceil((d.size * 10) / MB) / 10, max: Math.round((d.max_bytes / MB) * 10) / 10 },
          too_many_pixels: {
            got: d.width && d.height ? d.width + "×" + d.height : this.pixelsText(d.pixels),
            max: side + "×" + side,
            limit: this.pixelsText(d.max_pixels || side * side),
          },
          too_small: { width: d.width, height: d.height, min: d.min_side },
          ratio: { width: d.width, height: d.height, max: d.max_ratio },
          format: { format: d.format },
        };
        return this.t("upload." + d.reason, values[d.reason] || {}, this.t("err.validation_error"));
      },
      pixelsText(pixels) {
        const n = this.lang === "zh-CN" ? Math.round(pixels / 1e4) : Math.round(pixels / 1e5) / 10;
        return this.t("upload.pixels", { n });
      },
      async cancel(task) {
        try {
          this.upsert(await request("POST", "/task/" + task.task_id + "/cancel"));
        } catch (err) {
          this.toastError(err);
        }
      },
      async retry(task) {
        try {
          this.upsert(await request("POST", "/task/" + task.task_id + "/retry"));
        } catch (err) {
          this.toastError(err);
        }
      },

      // ---- history --------------------------------------------------------------------------
      filtersActive() {
        const f = this.filters;
        return !!(f.q || f.model || f.status || f.favorite || f.tag || f.date);
      },
      clearFilters() {
        this.filters = { q: "", model: "", status: "", favorite: false, tag: "", date: "" };
      },
      historyQuery(page) {
        const params = new URLSearchParams({ page: String(page), limit: String(HISTORY_PAGE) });
        const f = this.filters;
        if (f.q.trim()) params.set("q", f.q.trim());
        if (f.model) params.set("model", f.model);
        if (f.status) params.set("status", f.status);
        if (f.favorite) params.set("favorite", "true");
        if (f.tag) params.set("tag", f.tag);
        if (f.date) {
          const start = new Date(f.date + "T00:00:00");
          const end = new Date(start.getTime() + 86400000);
          params.set("date_from", start.toISOString());
          params.set("date_to", end.toISOString());
        }
        return "/history?" + params.toString();
      },
      async reloadHistory() {
        this.history = { items: [], page: 0, total: 0, loading: false, done: false };
        await this.loadMoreHistory();
      },
      async loadMoreHistory() {
        const h = this.history;
        if (h.loading || h.done) return;
        h.loading = true;
        try {
          const page = await request("GET", this.historyQuery(h.page + 1));
          const known = new Set(h.items.map((t) => t.task_id));
          h.items.push(...page.items.filter((t) => !known.has(t.task_id) && !this.pendingDeletes[t.task_id]));
          h.page = page.page;
          h.total = page.total;
          h.done = page.page * page.limit >= page.total;
        } catch (err) {
          this.toastError(err);
          h.done = true;
        } finally {
          h.loading = false;
        }
      },
      historyGroups() {
        const groups = [];
        const today = dayKey(new Date().toISOString());
        const yesterday = dayKey(new Date(Date.now() - 86400000).toISOString());
        for (const task of this.history.items) {
          const key = dayKey(task.created_at);
          let group = groups[groups.length - 1];
          if (!group || group.key !== key) {
            const label = key === today ? this.t("day.today") : key === yesterday ? this.t("day.yesterday") : new Date(task.created_at).toLocaleDateString(this.lang, { month: "long", day: "numeric", weekday: "short" });
            group = { key, label, tasks: [] };
            groups.push(group);
          }
          group.tasks.push(task);
        }
        return groups;
      },
      timeOf(iso) {
        return new Date(iso).toLocaleTimeString(this.lang, { hour: "2-digit", minute: "2-digit" });
      },
      modelName(id) {
        const model = this.models.find((m) => m.id === id);
        return model ? model.name : id;
      },
      showInGallery(task) {
        const i = this.gallery.findIndex((t) => t.task_id === task.task_id);
        if (i >= 0) this.gallery.splice(i, 1);
        this.gallery.unshift(task);
        this.tab = "gallery";
        if (task.images.length) this.openViewer(task, task.images[0]);
      },
      deleteTask(task) {
        this.pendingDeletes[task.task_id] = {
          task,
          timer: setTimeout(() => this.commitDelete(task.task_id), UNDO_MS),
        };
        this.dropTask(task.task_id);
        this.selected = this.selected.filter((id) => !task.images.some((i) => i.image_id === id));
        this.toast(this.t("toast.deleted"), "info", { label: this.t("action.undo"), run: () => this.undoDelete(task.task_id) });
      },
      undoDelete(taskId) {
        const pending = this.pendingDeletes[taskId];
        if (!pending) return;
        clearTimeout(pending.timer);
        delete this.pendingDeletes[taskId];
        this.upsert(pending.task);
        this.history.items.sort((a, b) => (a.created_at < b.created_at ? 1 : -1));
        this.gallery.sort((a, b) => (a.created_at < b.created_at ? 1 : -1));
      },
      async commitDelete(taskId) {
        if (!this.pendingDeletes[taskId]) return;
        delete this.pendingDeletes[taskId];
        try {
          await request("DELETE", "/history/" + taskId);
          this.loadTags();
        } catch (err) {
          if (err.status !== 404) this.toastError(err);
        }
      },
      flushDeletes() {
        for (const taskId of Object.keys(this.pendingDeletes)) {
          clearTimeout(this.pendingDeletes[taskId].timer);
          fetch(API + "/history/" + taskId, { method: "DELETE", keepalive: true, headers: guarded("DELETE", {}) });
        }
        this.pendingDeletes = {};
      },

      // ---- selection and ZIP ----------------------------------------------------------------
      taskSelected(task) {
        return task.images.length > 0 && task.images.every((i) => this.selected.includes(i.image_id));
      },
      toggleTask(task) {
        const ids = task.images.map((i) => i.image_id);
        if (this.taskSelected(task)) this.selected = this.selected.filter((id) => !ids.includes(id));
        else this.selected = [...new Set([...this.selected, ...ids])];
      },
      isSelected(image) {
        return this.selected.includes(image.image_id);
      },
      toggleImage(image) {
        if (this.isSelected(image)) this.selected = this.selected.filter((id) => id !== image.image_id);
        else this.selected = [...this.selected, image.image_id];
      },
      clearSelection() {
        this.selected = [];
      },
      archiveUrl() {
        return API + "/archive?ids=" + encodeURIComponent(this.selected.join(","));
      },

      // ---- favourites and tags --------------------------------------------------------------
      async updateImage(image, change) {
        try {
          this.patchImage(await request("PATCH", "/images/" + image.image_id, change));
          if (change.tags) this.loadTags();
        } catch (err) {
          this.toastError(err);
        }
      },
      toggleFavorite(image) {
        return this.updateImage(image, { favorite: !image.favorite });
      },
      addTag(image) {
        const name = this.viewer.tagDraft.trim();
        if (!name) return;
        this.viewer.tagDraft = "";
        if (!image.tags.includes(name)) this.updateImage(image, { tags: [...image.tags, name] });
      },
      removeTag(image, name) {
        this.updateImage(image, { tags: image.tags.filter((t) => t !== name) });
      },

      // ---- the viewer (lightbox) ------------------------------------------------------------
      openViewer(task, image) {
        const list = [];
        const source = this.gallery.includes(task) ? this.gallery : [task];
        for (const t of source) for (const img of t.images) list.push({ task: t, image: img });
        this.viewer.list = list;
        this.viewer.index = Math.max(0, list.findIndex((e) => e.image.image_id === image.image_id));
        this.resetZoom();
        this.viewer.open = true;
        this.$nextTick(() => this.$refs.viewerClose && this.$refs.viewerClose.focus());
      },
      closeViewer() {
        this.viewer.open = false;
      },
      current() {
        return this.viewer.list[this.viewer.index] || null;
      },
      step(delta) {
        const n = this.viewer.list.length;
        if (!n) return;
        this.viewer.index = (this.viewer.index + delta + n) % n;
        this.resetZoom();
      },
      resetZoom() {
        Object.assign(this.viewer, { zoom: 1, x: 0, y: 0, dragging: false });
      },
      zoomBy(factor) {
        this.viewer.zoom = Math.min(8, Math.max(1, this.viewer.zoom * factor));
        if (this.viewer.zoom === 1) Object.assign(this.viewer, { x: 0, y: 0 });
      },
      onWheel(event) {
        this.zoomBy(event.deltaY < 0 ? 1.2 : 1 / 1.2);
      },
      startPan(event) {
        if (this.viewer.zoom === 1) return;
        this.viewer.dragging = true;
        this.panFrom = { x: event.clientX - this.viewer.x, y: event.clientY - this.viewer.y };
      },
      pan(event) {
        if (!this.viewer.dragging) return;
        this.viewer.x = event.clientX - this.panFrom.x;
        this.viewer.y = event.clientY - this.panFrom.y;
      },
      endPan() {
        this.viewer.dragging = false;
      },
      imageTransform() {
        return { transform: "translate(" + this.viewer.x + "px, " + this.viewer.y + "px) scale(" + this.viewer.zoom + ")" };
      },
      scaleStep() {
        const model = this.currentModel();
        return model && model.scale ? (model.scale.max - model.scale.min) / 20 : 0.5;
      },
      zoomText() {
        return Math.round(this.viewer.zoom * 100) + "%";
      },
      downloadUrl(image) {
        return image.url + "?download=1";
      },
      async copyPrompt(task) {
        try {
          await navigator.clipboard.writeText(task.prompt);
          this.toast(this.t("toast.copied"), "success");
        } catch (err) {
          this.toast(this.t("toast.copyFailed"), "error");
        }
      },
      // `image`: the viewer's, whose own size and seed are shown (each image has its own)
      paramsLine(task, image) {
        const size = image || (task.images.length ? task.images[0] : task); // adaptive sizes are known after
        const parts = [this.modelName(task.model), size.width + "×" + size.height];
        const seed = image ? image.seed : task.seed;
        if (seed !== null && seed !== undefined) parts.push(this.t("param.seed") + " " + seed);
        if (task.scale !== null && task.scale !== undefined) parts.push(this.t("param.scale") + " " + task.scale);
        if (task.steps !== null && task.steps !== undefined) parts.push(this.t("param.steps") + " " + task.steps);
        return parts.join(" · ");
      },

      // ---- compare --------------------------------------------------------------------------
      pickForCompare(image) {
        const picks = this.compare.picks.filter((p) => p.image_id !== image.image_id);
        if (picks.length === this.compare.picks.length) picks.push(image);
        this.compare.picks = picks.slice(-2);
        if (this.compare.picks.length === 2) {
          this.viewer.open = false;
          this.compare.open = true;
        } else {
          this.toast(this.t("toast.comparePick"), "info");
        }
      },
      isCompared(image) {
        return this.compare.picks.some((p) => p.image_id === image.image_id);
      },
      closeCompare() {
        this.compare = { picks: [], open: false };
      },

      // ---- toasts ---------------------------------------------------------------------------
      // At most MAX_TOASTS at once, the oldest giving way; while the viewer is open, only the
      // newest (it sits clear of the viewer's controls).
      toast(message, kind, action, detail) {
        const id = Date.now() + Math.random();
        this.toasts = [...this.toasts, { id, message, detail: detail || "", kind: kind || "info", action: action || null }].slice(-MAX_TOASTS);
        setTimeout(() => this.dismiss(id), action ? UNDO_MS : kind === "error" ? 8000 : 3500);
      },
      shownToasts() {
        return this.viewer.open || this.compare.open ? this.toasts.slice(-1) : this.toasts;
      },
      toastError(err) {
        if (err.status === 401) return; // the API key dialog says it
        this.toast(this.apiErrorText(err), "error", null, err.message);
      },
      dismiss(id) {
        this.toasts = this.toasts.filter((t) => t.id !== id);
      },
      runToast(toast) {
        if (toast.action) toast.action.run();
        this.dismiss(toast.id);
      },

      // ---- keyboard -------------------------------------------------------------------------
      onKey(event) {
        const typing = ["INPUT", "TEXTAREA", "SELECT"].includes(event.target.tagName);
        if ((event.ctrlKey || event.metaKey) && event.key === "Enter") {
          event.preventDefault();
          this.generate();
          return;
        }
        if (event.key === "Escape") {
          if (this.compare.open) this.closeCompare();
          else if (this.viewer.open) this.closeViewer();
          else this.closeDialog();
          return;
        }
        if (this.viewer.open && !typing) {
          const c = this.current();
          const actions = {
            ArrowLeft: () => this.step(-1),
            ArrowRight: () => this.step(1),
            "+": () => this.zoomBy(1.25),
            "=": () => this.zoomBy(1.25),
            "-": () => this.zoomBy(0.8),
            "0": () => this.resetZoom(),
            f: () => c && this.toggleFavorite(c.image),
            r: () => this.remixImage(c),
            c: () => c && this.pickForCompare(c.image),
          };
          if (actions[event.key]) {
            event.preventDefault();
            actions[event.key]();
          }
          return;
        }
        if (typing || event.ctrlKey || event.metaKey || event.altKey) return;
        const global = {
          "?": () => (this.dialog = this.dialog === "help" ? "" : "help"),
          "/": () => {
            this.side = "history";
            this.tab = "tasks";
            this.$nextTick(() => this.$refs.search.focus());
          },
          n: () => {
            this.tab = "params";
            this.$nextTick(() => this.$refs.prompt.focus());
          },
          t: () => this.cycleTheme(),
          l: () => this.toggleLang(),
        };
        if (global[event.key]) {
          event.preventDefault();
          global[event.key]();
        }
      },
      shortcuts() {
        return [
          ["Ctrl + Enter", "keys.generate"],
          ["N", "keys.prompt"],
          ["/", "keys.search"],
          ["← →", "keys.arrows"],
          ["+ − 0", "keys.zoom"],
          ["F", "keys.favorite"],
          ["R", "keys.remix"],
          ["C", "keys.compare"],
          ["T", "keys.theme"],
          ["L", "keys.lang"],
          ["Esc", "keys.close"],
          ["?", "keys.help"],
        ];
      },

      // ---- status bar -----------------------------------------------------------------------
      quotaText() {
        const q = this.info.user_quota || this.info.quota || { used: 0, limit: null };
        return q.limit ? q.used + " / " + q.limit : this.t("status.quotaUnlimited", { n: q.used });
      },
      // Each provider as the server reports it: real, demo or not_configured (an older server
      // reports only `mode`, which then stands for all of them).
      providers() {
        return Object.entries(this.info.providers || {});
      },
      providersIn(state) {
        return this.providers().filter(([, p]) => p.state === state);
      },
      providerNames(entries) {
        return entries.map(([name]) => this.t("provider." + name)).join(this.t("list.separator"));
      },
      allProviders(state) {
        const all = this.providers();
        return all.length ? all.every(([, p]) => p.state === state) : this.info.mode === state;
      },
      modeText() {
        if (!this.info.mode) return "";
        if (this.allProviders("demo")) return this.t("mode.demo");
        if (this.allProviders("real")) return this.t("mode.real");
        return this.providers().map(([name, p]) => this.t("provider." + name) + " " + this.t("providerState." + p.state)).join(" · ");
      },
      // `short`: a phone's top bar has room for a word, not the names
      demoBadge(short) {
        if (this.allProviders("demo")) return this.info.mode ? this.t("mode.demoBadge") : "";
        const demo = this.providersIn("demo");
        if (!demo.length) return "";
        return short ? this.t("mode.partDemoShort") : this.t("mode.partDemoBadge", { names: this.providerNames(demo) });
      },
      needsCredentials() {
        return Boolean(this.info.mode) && !this.info.api_connected;
      },
      credentialsBanner() {
        const missing = this.providersIn("not_configured");
        if (!missing.length) return { title: this.t("banner.noCredentials"), how: this.t("banner.noCredentialsHow") };
        const vars = missing.flatMap(([, p]) => p.credentials).join(" / ");
        return {
          title: this.t("banner.notConfigured", { names: this.providerNames(missing) }),
          how: this.t("banner.notConfiguredHow", { vars }),
        };
      },
      async toggleNotify() {
        if (this.notify) {
          this.notify = false;
          localStorage.removeItem("volcimage.notify");
          return;
        }
        if (!("Notification" in window)) {
          this.toast(this.t("notify.unsupported"), "error");
          return;
        }
        const answer = Notification.permission === "granted" ? "granted" : await Notification.requestPermission();
        this.notify = answer === "granted";
        if (this.notify) localStorage.setItem("volcimage.notify", "1");
        else this.toast(this.t("notify.denied"), "error");
      },
      // a task that ended while the page was out of sight, if asked for
      notifyEnded(task) {
        if (!this.notify || document.visibilityState !== "hidden" || !("Notification" in window)) return;
        if (Notification.permission !== "granted") return;
        const note = new Notification(this.statusText(task) + " · " + this.baseTitle, { body: task.prompt.slice(0, 140), tag: task.task_id });
        note.onclick = () => {
          window.focus();
          note.close();
        };
      },
      tabTitle() {
        const n = this.activeTasks().length;
        return n ? this.t("title.running", { n }) + " · " + this.baseTitle : this.baseTitle;
      },

      // ---- progress: time under way against what tasks like it took here -------------------
      elapsedSeconds(task) {
        const from = task.status === "pending" || !task.started_at ? task.created_at : task.started_at;
        return Math.max(0, Math.floor((this.now - Date.parse(from)) / 1000));
      },
      // The stored images move the bar; between them it creeps towards 90 % as the usual time
      // passes, so a long upstream call does not look stuck.
      progressWidth(task) {
        if (task.status !== "processing" || !task.estimated_seconds) return task.progress;
        const guessed = 10 + 80 * Math.min(1, this.elapsedSeconds(task) / task.estimated_seconds);
        return Math.max(task.progress, Math.round(guessed));
      },
      duration(seconds) {
        if (seconds < 60) return this.t("time.seconds", { n: seconds });
        return this.t("time.minutes", { m: Math.floor(seconds / 60), s: seconds % 60 });
      },
      timingText(task) {
        const estimate = task.estimated_seconds;
        if (task.status === "pending") return estimate ? this.t("progress.queued", { e: this.duration(estimate) }) : "";
        if (task.status !== "processing") return "";
        const elapsed = this.elapsedSeconds(task);
        if (!estimate) return this.duration(elapsed);
        const key = elapsed > estimate * 1.5 ? "progress.slow" : "progress.timing";
        return this.t(key, { s: this.duration(elapsed), e: this.duration(estimate) });
      },
    };
  }

  document.addEventListener("alpine:init", () => {
    window.Alpine.data("studio", studio);
  });
})();
