// Alpine.data("history"): the side panel: the tasks under way, and the history (the history view
// of stores/tasks.js) with its search, filters, selection for a ZIP, and delete with undo.
import { API } from "../api.js";
import { cards } from "../cards.js";
import { onSignal, t } from "../stores/ui.js";
import { toast } from "../toasts.js";

function dayKey(iso) {
  const d = new Date(iso);
  return d.getFullYear() + "-" + String(d.getMonth() + 1).padStart(2, "0") + "-" + String(d.getDate()).padStart(2, "0");
}

export function history() {
  return {
    ...cards,
    selected: [], // image ids

    init() {
      let searchTimer = null;
      this.$watch("$store.tasks.filters", () => {
        clearTimeout(searchTimer);
        searchTimer = setTimeout(() => this.$store.tasks.reloadHistory(), 250);
      });
      // more pages as the end comes into view, once the first is in
      this.$watch("$store.ui.ready", () => {
        new IntersectionObserver((entries) => {
          if (entries.some((e) => e.isIntersecting)) this.$store.tasks.loadMoreHistory();
        }, { root: null, rootMargin: "200px" }).observe(this.$refs.historyEnd);
      });
      onSignal("focus-search", () => this.$nextTick(() => this.$refs.search.focus()));
      onSignal("signed-out", () => (this.selected = []));
    },
    groups() {
      const groups = [];
      const lang = this.$store.ui.lang;
      const today = dayKey(new Date().toISOString());
      const yesterday = dayKey(new Date(Date.now() - 86400000).toISOString());
      for (const task of this.$store.tasks.historyItems()) {
        const key = dayKey(task.created_at);
        let group = groups[groups.length - 1];
        if (!group || group.key !== key) {
          const label = key === today ? t("day.today") : key === yesterday ? t("day.yesterday") : new Date(task.created_at).toLocaleDateString(lang, { month: "long", day: "numeric", weekday: "short" });
          group = { key, label, tasks: [] };
          groups.push(group);
        }
        group.tasks.push(task);
      }
      return groups;
    },
    showInGallery(task) {
      this.$store.tasks.bringToGallery(task);
      this.$store.ui.tab = "gallery";
      if (task.images.length) this.$store.viewer.show(task, task.images[0]);
    },
    deleteTask(task) {
      const tasks = this.$store.tasks;
      tasks.deleteLater(task);
      this.selected = this.selected.filter((id) => !task.images.some((i) => i.image_id === id));
      toast(t("toast.deleted"), "info", { label: t("action.undo"), run: () => tasks.undoDelete(task.task_id) });
    },

    // ---- selection and ZIP ----------------------------------------------------------------------
    taskSelected(task) {
      return task.images.length > 0 && task.images.every((i) => this.selected.includes(i.image_id));
    },
    toggleTask(task) {
      const ids = task.images.map((i) => i.image_id);
      if (this.taskSelected(task)) this.selected = this.selected.filter((id) => !ids.includes(id));
      else this.selected = [...new Set([...this.selected, ...ids])];
    },
    clearSelection() {
      this.selected = [];
    },
    archiveUrl() {
      return API + "/archive?ids=" + encodeURIComponent(this.selected.join(","));
    },
  };
}
