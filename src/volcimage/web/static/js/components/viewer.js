// The viewer (lightbox) and the side-by-side compare. What they show is a store, since the
// gallery, the history, the keys and the toasts all ask it; the panel's own doings (panning,
// the tag being typed) are the component's.
import { cards } from "../cards.js";
import { signal, t } from "../stores/ui.js";
import { toast } from "../toasts.js";

// Alpine.store("viewer")
export function viewerStore() {
  return {
    open: false,
    list: [], // {task, image} as they were when it opened
    index: 0,
    zoom: 1,
    x: 0,
    y: 0,
    dragging: false,
    compare: { picks: [], open: false },

    // through the gallery's images if the task is there, else through the task's own
    show(task, image) {
      const tasks = Alpine.store("tasks");
      const source = tasks.inGallery(task) ? tasks.gallery() : [task];
      const list = [];
      for (const shown of source) for (const img of shown.images) list.push({ task: shown, image: img });
      this.list = list;
      this.index = Math.max(0, list.findIndex((e) => e.image.image_id === image.image_id));
      this.resetZoom();
      this.open = true;
    },
    close() {
      this.open = false;
    },
    isOpen() {
      return this.open || this.compare.open;
    },
    // the image shown, as the tasks store has it now (a favourite or a tag since shows)
    current() {
      const entry = this.list[this.index];
      if (!entry) return null;
      const task = Alpine.store("tasks").find(entry.task.task_id) || entry.task;
      return { task, image: task.images.find((i) => i.image_id === entry.image.image_id) || entry.image };
    },
    step(delta) {
      const n = this.list.length;
      if (!n) return;
      this.index = (this.index + delta + n) % n;
      this.resetZoom();
    },
    resetZoom() {
      Object.assign(this, { zoom: 1, x: 0, y: 0, dragging: false });
    },
    zoomBy(factor) {
      this.zoom = Math.min(8, Math.max(1, this.zoom * factor));
      if (this.zoom === 1) Object.assign(this, { x: 0, y: 0 });
    },
    zoomText() {
      return Math.round(this.zoom * 100) + "%";
    },
    imageTransform() {
      return { transform: "translate(" + this.x + "px, " + this.y + "px) scale(" + this.zoom + ")" };
    },
    pickForCompare(image) {
      const picks = this.compare.picks.filter((p) => p.image_id !== image.image_id);
      if (picks.length === this.compare.picks.length) picks.push(image);
      this.compare.picks = picks.slice(-2);
      if (this.compare.picks.length === 2) {
        this.open = false;
        this.compare.open = true;
      } else {
        toast(t("toast.comparePick"), "info");
      }
    },
    isCompared(image) {
      return this.compare.picks.some((p) => p.image_id === image.image_id);
    },
    closeCompare() {
      this.compare = { picks: [], open: false };
    },
  };
}

// Alpine.data("viewer"): the viewer's and the compare's overlays
export function viewer() {
  return {
    ...cards,
    tagDraft: "",
    panFrom: { x: 0, y: 0 },

    init() {
      this.$watch("$store.viewer.open", (open) => {
        if (open) this.$nextTick(() => this.$refs.viewerClose && this.$refs.viewerClose.focus());
      });
    },
    current() {
      return this.$store.viewer.current();
    },
    onWheel(event) {
      this.$store.viewer.zoomBy(event.deltaY < 0 ? 1.2 : 1 / 1.2);
    },
    startPan(event) {
      const v = this.$store.viewer;
      if (v.zoom === 1) return;
      v.dragging = true;
      this.panFrom = { x: event.clientX - v.x, y: event.clientY - v.y };
    },
    pan(event) {
      const v = this.$store.viewer;
      if (!v.dragging) return;
      v.x = event.clientX - this.panFrom.x;
      v.y = event.clientY - this.panFrom.y;
    },
    endPan() {
      this.$store.viewer.dragging = false;
    },
    addTag(image) {
      const name = this.tagDraft.trim();
      if (!name) return;
      this.tagDraft = "";
      if (!image.tags.includes(name)) this.$store.tasks.updateImage(image, { tags: [...image.tags, name] });
    },
    removeTag(image, name) {
      this.$store.tasks.updateImage(image, { tags: image.tags.filter((tag) => tag !== name) });
    },
    async copyPrompt(task) {
      try {
        await navigator.clipboard.writeText(task.prompt);
        toast(t("toast.copied"), "success");
      } catch (err) {
        toast(t("toast.copyFailed"), "error");
      }
    },
    // the parameters panel fills its form from them
    remixImage(entry) {
      signal("remix-image", entry);
    },
    useAsReference(image) {
      signal("use-reference", image);
    },
  };
}
