// Alpine.data("params"): the parameters panel: the form, the reference images, the prompt
// templates, and Generate. Others fill the form through signals (a remix from a card or the
// viewer, a reference from the viewer, an example, Ctrl+Enter).
import { API, request, upload } from "../api.js";
import { DRAGGED_IMAGE } from "../cards.js";
import { onSignal, t } from "../stores/ui.js";
import { toast, toastError } from "../toasts.js";
import { apiErrorText, uploadText } from "../words.js";

const MAX_SEED = 2147483647;

function ratioLabel(width, height) {
  const gcd = (a, b) => (b ? gcd(b, a % b) : a);
  const d = gcd(width, height);
  const w = width / d;
  const h = height / d;
  return w > 30 || h > 30 ? (width / height).toFixed(2) + ":1" : w + ":" + h;
}

export function params() {
  return {
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
    templateChoice: "",
    savingTemplate: false,
    templateName: "",

    init() {
      this.$watch("form.model", () => this.onModelChange());
      this.$watch("$store.catalog.models", () => {
        this.form.model = this.form.model || this.$store.catalog.defaultModel;
        this.onModelChange();
      });
      window.addEventListener("paste", (event) => this.onPaste(event));
      onSignal("generate", () => this.generate());
      onSignal("remix", (task) => this.remix(task));
      onSignal("remix-image", (entry) => this.remixImage(entry));
      onSignal("use-reference", (image) => this.useAsReference(image));
      onSignal("use-example", (text) => this.useExample(text));
      onSignal("focus-prompt", () => this.$nextTick(() => this.$refs.prompt.focus()));
      onSignal("signed-out", () => (this.templateChoice = ""));
    },

    // ---- the model and what it takes ----------------------------------------------------------
    currentModel() {
      return this.$store.catalog.model(this.form.model);
    },
    modelDescription() {
      const model = this.currentModel();
      if (!model) return "";
      return this.$store.ui.lang === "zh-CN" && model.description_zh ? model.description_zh : model.description;
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
    scaleStep() {
      const model = this.currentModel();
      if (!model || !model.scale) return 0.5;
      return model.scale.integer ? 1 : (model.scale.max - model.scale.min) / 20;
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
    toggleGroup() {
      this.form.group = !this.form.group;
      this.form.num_images = Math.min(this.form.num_images, this.maxImages());
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
      return t(n === 1 ? "param.costOne" : "param.cost", { cost: this.cost(), n });
    },

    // ---- reference images ---------------------------------------------------------------------
    maxRefs() {
      const model = this.currentModel();
      return model ? model.max_reference_images : 0;
    },
    minRefs() {
      const model = this.currentModel();
      return model ? model.min_reference_images : 0;
    },
    refsLabel() {
      return t("refs.count", { n: this.form.references.length, max: this.maxRefs() });
    },
    onDrop(event) {
      this.dragging = false;
      const transfer = event.dataTransfer;
      if (!transfer) return;
      const dragged = transfer.getData(DRAGGED_IMAGE);
      if (dragged) this.addReference(JSON.parse(dragged));
      else this.addFiles(transfer.files);
    },
    addReference(ref) {
      if (this.form.references.some((r) => r.id === ref.id)) return;
      if (this.form.references.length + this.uploading >= this.maxRefs()) {
        toast(t("refs.full", { max: this.maxRefs() }), "error");
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
          toast(t("refs.full", { max: this.maxRefs() }), "error");
          return;
        }
        const limit = this.$store.catalog.uploadLimits.max_bytes;
        if (file.size > limit) { // the server would refuse it unread: say so before sending it
          const reason = uploadText({ reason: "too_large", size: file.size, max_bytes: limit });
          toast(t("upload.named", { name: file.name, reason }), "error");
          continue;
        }
        this.uploading++;
        try {
          const data = await upload("/uploads", file);
          this.form.references.push({ id: data.upload_id, thumb: data.thumbnail_url });
        } catch (err) {
          if (err.status === 401) continue;
          toast(t("upload.named", { name: file.name, reason: apiErrorText(err) }), "error", null, err.message);
        } finally {
          this.uploading--;
        }
      }
    },
    useAsReference(image) {
      let switched = "";
      if (!this.maxRefs()) {
        const capable = this.$store.catalog.models.find((m) => m.max_reference_images > 0 && m.size_rule.mode !== "adaptive");
        if (!capable) return;
        switched = t("refs.switched", { from: this.$store.catalog.modelName(this.form.model), to: capable.name });
        this.form.model = capable.id;
      }
      this.$nextTick(() => {
        this.$store.viewer.close();
        this.$store.ui.tab = "params";
        if (this.form.references.some((r) => r.id === image.image_id)) return;
        if (this.form.references.length >= this.maxRefs()) this.form.references.shift();
        this.form.references.push({ id: image.image_id, thumb: image.thumbnail_url });
        toast(switched || t("toast.referenceAdded"), switched ? "info" : "success");
      });
    },
    removeReference(ref) {
      this.form.references = this.form.references.filter((r) => r.id !== ref.id);
    },

    // ---- size -----------------------------------------------------------------------------------
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
    // catalog/models.py SizeRule.check on the rule /models gives (a browser test holds the two
    // together): said here at once, as the server would refuse it
    checkCustomSize() {
      const model = this.currentModel();
      if (!model || !this.form.custom) return "";
      const [w, h] = this.dimensions();
      const rule = model.size_rule;
      if (!Number.isInteger(w) || !Number.isInteger(h) || w < 1 || h < 1) return t("size.invalid");
      const pixels = w * h;
      if (rule.mode === "sides") {
        if (w < rule.min_side || h < rule.min_side || w > rule.max_side || h > rule.max_side) {
          return t("size.sides", { min: rule.min_side, max: rule.max_side });
        }
      } else if (pixels < rule.min_pixels || pixels > rule.max_pixels) {
        return t("size.area", { min: Math.ceil(Math.sqrt(rule.min_pixels)), max: Math.floor(Math.sqrt(rule.max_pixels)) });
      }
      const ratio = w / h; // a bound the rule leaves out is no bound
      if ((rule.min_ratio && ratio < rule.min_ratio) || (rule.max_ratio && ratio > rule.max_ratio)) {
        return t("size.ratio", { a: Math.round(1 / rule.min_ratio), b: rule.max_ratio });
      }
      return "";
    },

    // ---- seed -----------------------------------------------------------------------------------
    randomSeed() {
      return Math.floor(Math.random() * MAX_SEED);
    },
    newSeed() {
      this.form.seedMode = "fixed";
      this.form.seed = this.randomSeed();
    },

    // ---- Generate -------------------------------------------------------------------------------
    canGenerate() {
      return !this.submitting && !this.blockReason();
    },
    // something to fix, not just the prompt still to write or an upload under way
    blockIsProblem() {
      return !this.uploading && Boolean(this.form.prompt.trim()) && Boolean(this.blockReason());
    },
    // why Generate is off, said beside it and by Ctrl+Enter; "" when it is on
    blockReason() {
      if (this.uploading) return t("why.uploading");
      if (!this.form.prompt.trim()) return t("why.prompt");
      if (this.promptTooLong()) return t("why.promptTooLong", { n: this.form.prompt.length, max: this.promptLimit() });
      if (this.form.references.length < this.minRefs()) return t("refs.needed", { n: this.minRefs() });
      const size = this.checkCustomSize();
      return size ? t("why.size", { reason: size }) : "";
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
        toast(reason, "error");
        return;
      }
      this.submitting = true;
      try {
        const created = await request("POST", "/generate", this.requestBody());
        if (created.warnings && created.warnings.length) toast(t("warn.longPrompt"), "info");
        const task = await request("GET", "/task/" + created.task_id);
        this.$store.tasks.upsert(task); // its card says it is queued: no toast
        this.$store.ui.tab = "gallery";
      } catch (err) {
        toastError(err);
      } finally {
        this.submitting = false;
      }
    },

    // ---- the form from elsewhere ----------------------------------------------------------------
    useExample(text) {
      this.form.prompt = text;
      this.$store.ui.tab = "params"; // on a phone the prompt is on its own tab
      this.$nextTick(() => this.$refs.prompt && this.$refs.prompt.focus());
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
        this.$store.viewer.close();
        this.$store.ui.tab = "params";
        toast(t("toast.remixed"), "success");
      });
    },
    // A task or a template into the form: what the source does not say is left as it is.
    fillForm(source, done) {
      if (source.model && this.$store.catalog.models.some((m) => m.id === source.model)) this.form.model = source.model;
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

    // ---- prompt templates -----------------------------------------------------------------------
    applyTemplate(templateId) {
      const template = this.$store.catalog.templates.find((x) => x.template_id === templateId);
      if (!template) return;
      const p = template.params || {};
      const source = { model: template.model, prompt: template.prompt, negative_prompt: template.negative_prompt, params: { watermark: p.watermark, group: p.group } };
      for (const key of ["width", "height", "num_images", "seed", "scale", "steps"]) source[key] = p[key];
      this.fillForm(source, () => toast(t("template.applied", { name: template.name }), "success"));
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
      const catalog = this.$store.catalog;
      try {
        const saved = await request("POST", "/templates", { name, prompt: body.prompt, negative_prompt: body.negative_prompt || null, model: body.model, params });
        catalog.templates = [saved, ...catalog.templates];
        this.templateChoice = saved.template_id;
        this.savingTemplate = false;
        toast(t("template.saved", { name: saved.name }), "success");
      } catch (err) {
        toastError(err);
      }
    },
    async deleteTemplate() {
      const catalog = this.$store.catalog;
      const template = catalog.templates.find((x) => x.template_id === this.templateChoice);
      if (!template) return;
      try {
        await request("DELETE", "/templates/" + template.template_id);
        catalog.templates = catalog.templates.filter((x) => x.template_id !== template.template_id);
        this.templateChoice = "";
        toast(t("template.deleted", { name: template.name }), "success");
      } catch (err) {
        toastError(err);
      }
    },
  };
}
