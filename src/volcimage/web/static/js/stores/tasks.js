// Alpine.store("tasks"): every task the page shows, once, in one Map by task_id. The gallery
// (the newest, and any brought up from the history) and the history (the server's pages for
// the filters) are lists of ids into it: a task's news is written in one place and both show
// it. Every id in a list is in the Map, and the Map holds nothing no list shows.
import { API, deleteOnLeaving, request } from "../api.js";
import { FINAL, isActive, statusText } from "../cards.js";
import { toastError, UNDO_MS } from "../toasts.js";

const GALLERY_FIRST = 12; // tasks the gallery starts with
const CATCH_UP = 50; // the newest tasks read again when events were lost
const HISTORY_PAGE = 20;

function noFilters() {
  return { q: "", model: "", status: "", favorite: false, tag: "", date: "" };
}

function firstPage() {
  return { ids: [], page: 0, total: 0, loading: false, done: false };
}

// a task that ended while the page was out of sight, if asked for
function notifyEnded(task) {
  const ui = Alpine.store("ui");
  if (!ui.notify || document.visibilityState !== "hidden" || !("Notification" in window)) return;
  if (Notification.permission !== "granted") return;
  const note = new Notification(statusText(task) + " · " + ui.baseTitle, { body: task.prompt.slice(0, 140), tag: task.task_id });
  note.onclick = () => {
    window.focus();
    note.close();
  };
}

export function tasks() {
  return {
    byId: new Map(),
    galleryIds: [], // newest first, but for one brought up from the history
    galleryFrom: -Infinity, // the gallery holds every task made after this (ms since epoch)
    history: firstPage(),
    filters: noFilters(),
    pendingDeletes: {}, // task_id: {task, timer}, gone from the page, not yet from the server
    source: null,
    connected: false,
    catchingUp: false, // a catch-up is under way, and whether another must follow it
    catchUpAgain: false,
    now: Date.now(), // ticks while tasks are under way: their elapsed time

    init() {
      window.addEventListener("pagehide", () => this.flushDeletes());
      setInterval(() => {
        if (this.active().length) this.now = Date.now();
      }, 1000);
    },

    // ---- the views ----------------------------------------------------------------------------
    find(taskId) {
      return this.byId.get(taskId);
    },
    gallery() {
      return this.galleryIds.map((id) => this.byId.get(id));
    },
    historyItems() {
      return this.history.ids.map((id) => this.byId.get(id));
    },
    inGallery(task) {
      return this.galleryIds.includes(task.task_id);
    },
    active() {
      return this.gallery().filter(isActive);
    },
    filtersActive() {
      const f = this.filters;
      return !!(f.q || f.model || f.status || f.favorite || f.tag || f.date);
    },
    clearFilters() {
      this.filters = noFilters();
    },

    // ---- what the server has -------------------------------------------------------------------
    async loadGallery() {
      try {
        const newest = (await request("GET", "/tasks?limit=" + GALLERY_FIRST)).items;
        newest.forEach((task) => this.keep(task));
        this.galleryIds = newest.map((task) => task.task_id);
        this.galleryFrom = newest.length < GALLERY_FIRST ? -Infinity : Date.parse(newest[newest.length - 1].created_at);
        this.forgetUnshown();
      } catch (err) {
        toastError(err);
      }
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
      this.history = firstPage();
      this.forgetUnshown();
      await this.loadMoreHistory();
    },
    async loadMoreHistory() {
      const h = this.history;
      if (h.loading || h.done) return;
      h.loading = true;
      try {
        const page = await request("GET", this.historyQuery(h.page + 1));
        if (h !== this.history) return; // the filters changed meanwhile: another page 1 comes
        const fresh = page.items.filter((task) => !h.ids.includes(task.task_id) && !this.pendingDeletes[task.task_id]);
        fresh.forEach((task) => this.keep(task));
        h.ids.push(...fresh.map((task) => task.task_id));
        h.page = page.page;
        h.total = page.total;
        h.done = page.page * page.limit >= page.total;
      } catch (err) {
        toastError(err);
        h.done = true;
      } finally {
        h.loading = false;
      }
    },

    // ---- a task's news, from an answer or an event ------------------------------------------------
    // Answers and events can arrive out of order: an older state never replaces a newer one.
    isStale(task) {
      const known = this.byId.get(task.task_id);
      return Boolean(known) && Date.parse(known.updated_at) > Date.parse(task.updated_at);
    },
    keep(task) {
      if (!this.isStale(task)) this.byId.set(task.task_id, task);
    },
    // a task as an event shows it: replaced where shown, else new on top
    upsert(task) {
      if (this.isStale(task)) return;
      const known = this.byId.get(task.task_id);
      if (known && !FINAL.includes(known.status) && FINAL.includes(task.status)) notifyEnded(task);
      this.byId.set(task.task_id, task);
      if (!this.galleryIds.includes(task.task_id)) this.galleryIds.unshift(task.task_id);
      const h = this.history;
      if (!h.ids.includes(task.task_id) && !this.filtersActive()) {
        h.ids.unshift(task.task_id);
        h.total++;
      }
    },
    drop(taskId) {
      this.byId.delete(taskId);
      this.galleryIds = this.galleryIds.filter((id) => id !== taskId);
      const before = this.history.ids.length;
      this.history.ids = this.history.ids.filter((id) => id !== taskId);
      this.history.total -= before - this.history.ids.length;
    },
    forgetUnshown() {
      for (const taskId of [...this.byId.keys()]) {
        if (!this.galleryIds.includes(taskId) && !this.history.ids.includes(taskId)) this.byId.delete(taskId);
      }
    },
    patchImage(image) {
      for (const task of this.byId.values()) {
        const i = task.images.findIndex((img) => img.image_id === image.image_id);
        if (i >= 0) task.images.splice(i, 1, image);
      }
    },
    // a task from the history on top of the gallery
    bringToGallery(task) {
      this.galleryIds = [task.task_id, ...this.galleryIds.filter((id) => id !== task.task_id)];
    },
    clear() {
      if (this.source) this.source.close();
      this.byId.clear();
      this.galleryIds = [];
      this.history = firstPage();
    },

    // ---- events -----------------------------------------------------------------------------------
    connect() {
      if (this.source) this.source.close();
      const source = new EventSource(API + "/events");
      this.source = source;
      source.addEventListener("ready", () => {
        const wasConnected = this.connected;
        this.connected = true;
        if (!wasConnected && this.galleryIds.length) this.catchUp();
      });
      source.addEventListener("task", (message) => this.onEvent(JSON.parse(message.data)));
      source.onerror = () => {
        this.connected = false;
      };
    },
    onEvent(event) {
      if (event.type === "events.missed") {
        this.catchUp();
        return;
      }
      if (event.type === "task.deleted") {
        this.drop(event.task.task_id);
        return;
      }
      if (event.type === "image.updated") {
        this.patchImage(event.image);
        return;
      }
      if (!event.task || !event.task.status) return;
      const task = event.task;
      const before = this.byId.get(task.task_id);
      this.upsert(task);
      // the task's card says how it ended: no toast
      if (before && !FINAL.includes(before.status) && FINAL.includes(task.status)) Alpine.store("session").loadInfo();
    },
    // Events were lost (the stream dropped, or the server's were): the newest tasks are read
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
      const shownBefore = new Map(this.byId);
      let newest;
      try {
        newest = (await request("GET", "/tasks?limit=" + CATCH_UP)).items;
      } catch (err) {
        toastError(err);
        return;
      }
      const listed = new Set(newest.map((task) => task.task_id));
      // every task made after the oldest of them is among them, unless it was deleted; one
      // shown only since the answer was asked for is not judged by it
      const whole = newest.length < CATCH_UP ? -Infinity : Date.parse(newest[newest.length - 1].created_at);
      for (const [taskId, task] of shownBefore) {
        const still = this.byId.get(taskId) === task;
        if (still && Date.parse(task.created_at) > whole && !listed.has(taskId)) this.drop(taskId);
      }
      for (const task of newest) {
        if (this.byId.has(task.task_id)) this.keep(task);
        else if (Date.parse(task.created_at) > this.galleryFrom && !this.pendingDeletes[task.task_id]) this.insertShown(task);
      }
      Alpine.store("session").loadInfo();
    },
    // a task the page missed, where its age puts it in the lists (both newest first)
    insertShown(task) {
      this.byId.set(task.task_id, task);
      const made = Date.parse(task.created_at);
      const place = (ids) => {
        const i = ids.findIndex((id) => Date.parse(this.byId.get(id).created_at) < made);
        return i < 0 ? ids.length : i;
      };
      this.galleryIds.splice(place(this.galleryIds), 0, task.task_id);
      const h = this.history;
      const at = place(h.ids);
      if (!this.filtersActive() && (at < h.ids.length || h.done)) {
        h.ids.splice(at, 0, task.task_id);
        h.total++;
      }
    },

    // ---- changes the page asks for --------------------------------------------------------------
    async cancel(task) {
      try {
        this.upsert(await request("POST", "/task/" + task.task_id + "/cancel"));
      } catch (err) {
        toastError(err);
      }
    },
    async retry(task) {
      try {
        this.upsert(await request("POST", "/task/" + task.task_id + "/retry"));
      } catch (err) {
        toastError(err);
      }
    },
    async updateImage(image, change) {
      try {
        this.patchImage(await request("PATCH", "/images/" + image.image_id, change));
        if (change.tags) Alpine.store("catalog").loadTags();
      } catch (err) {
        toastError(err);
      }
    },
    // gone from the page at once, from the server once the undo has had its time
    deleteLater(task) {
      this.pendingDeletes[task.task_id] = {
        task,
        timer: setTimeout(() => this.commitDelete(task.task_id), UNDO_MS),
      };
      this.drop(task.task_id);
    },
    undoDelete(taskId) {
      const pending = this.pendingDeletes[taskId];
      if (!pending) return;
      clearTimeout(pending.timer);
      delete this.pendingDeletes[taskId];
      this.upsert(pending.task);
      const newestFirst = (a, b) => (this.byId.get(a).created_at < this.byId.get(b).created_at ? 1 : -1);
      this.history.ids.sort(newestFirst);
      this.galleryIds.sort(newestFirst);
    },
    async commitDelete(taskId) {
      if (!this.pendingDeletes[taskId]) return;
      delete this.pendingDeletes[taskId];
      try {
        await request("DELETE", "/history/" + taskId);
        Alpine.store("catalog").loadTags();
      } catch (err) {
        if (err.status !== 404) toastError(err);
      }
    },
    flushDeletes() {
      for (const taskId of Object.keys(this.pendingDeletes)) {
        clearTimeout(this.pendingDeletes[taskId].timer);
        deleteOnLeaving("/history/" + taskId);
      }
      this.pendingDeletes = {};
    },
  };
}
