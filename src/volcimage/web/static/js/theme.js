// Runs in <head> before the first paint so a dark page never flashes white.
(function () {
  "use strict";
  window.volcTheme = {
    apply(choice) {
      const dark = choice === "dark" || (choice === "system" && window.matchMedia("(prefers-color-scheme: dark)").matches);
      document.documentElement.classList.toggle("dark", dark);
    },
  };
  window.volcTheme.apply(localStorage.getItem("volcimage.theme") || "system");
})();
