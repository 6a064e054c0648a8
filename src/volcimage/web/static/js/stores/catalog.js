// Alpine.store("catalog"): what there is to choose from: the models (and the upload limits the
// server gives with them), the tags in use, the user's prompt templates.
import { request } from "../api.js";
import { toastError } from "../toasts.js";
import { MB } from "../words.js";

export function catalog() {
  return {
    models: [], // replaced, never changed in place: the parameters panel watches it
    defaultModel: "",
    uploadLimits: { max_bytes: 10 * MB, max_pixels: 6000 * 6000, min_side: 15, max_ratio: 16 },
    tags: [],
    templates: [],

    async loadModels() {
      try {
        const data = await request("GET", "/models");
        if (data.uploads) this.uploadLimits = data.uploads;
        this.defaultModel = data.default_model;
        this.models = data.models;
      } catch (err) {
        toastError(err);
      }
    },
    async loadTags() {
      try {
        this.tags = await request("GET", "/tags");
      } catch (err) {
        this.tags = [];
      }
    },
    async loadTemplates() {
      try {
        this.templates = await request("GET", "/templates");
      } catch (err) {
        this.templates = [];
      }
    },
    // what the model picker offers: the editing tools (a source image) get panels of their own
    get pickable() {
      return this.models.filter((m) => !m.retired && !m.takes_source);
    },
    model(id) {
      return this.models.find((m) => m.id === id) || null;
    },
    modelName(id) {
      const model = this.model(id);
      return model ? model.name : id;
    },
  };
}
