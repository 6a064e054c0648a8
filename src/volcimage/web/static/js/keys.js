// The keyboard shortcuts: one handler for the page (the root component's, on window), which
// acts on the stores and sends signals to the components that hold the rest.
import { toggleFavorite } from "./cards.js";
import { signal } from "./stores/ui.js";

export const keys = {
  onKey(event) {
    const ui = this.$store.ui;
    const viewer = this.$store.viewer;
    const typing = ["INPUT", "TEXTAREA", "SELECT"].includes(event.target.tagName);
    if ((event.ctrlKey || event.metaKey) && event.key === "Enter") {
      event.preventDefault();
      signal("generate");
      return;
    }
    if (event.key === "Escape") {
      if (viewer.compare.open) viewer.closeCompare();
      else if (viewer.open) viewer.close();
      else ui.closeDialog();
      return;
    }
    if (viewer.open && !typing) {
      const c = viewer.current();
      const actions = {
        ArrowLeft: () => viewer.step(-1),
        ArrowRight: () => viewer.step(1),
        "+": () => viewer.zoomBy(1.25),
        "=": () => viewer.zoomBy(1.25),
        "-": () => viewer.zoomBy(0.8),
        "0": () => viewer.resetZoom(),
        f: () => c && toggleFavorite(c.image),
        r: () => signal("remix-image", c),
        c: () => c && viewer.pickForCompare(c.image),
      };
      if (actions[event.key]) {
        event.preventDefault();
        actions[event.key]();
      }
      return;
    }
    if (typing || event.ctrlKey || event.metaKey || event.altKey) return;
    const global = {
      "?": () => (ui.dialog = ui.dialog === "help" ? "" : "help"),
      "/": () => {
        ui.side = "history";
        ui.tab = "tasks";
        signal("focus-search");
      },
      n: () => {
        ui.tab = "params";
        signal("focus-prompt");
      },
      t: () => ui.cycleTheme(),
      l: () => ui.toggleLang(),
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
};
