// The operations page's only script: refreshes the parts marked data-refresh-url.
// Every data-refresh-seconds it fetches the part again from the router (same origin)
// and puts it in place; while the tab is hidden it waits. Without script, the page
// still works: it shows the figures as they were when it was loaded.
"use strict";

function keepRefreshing(region) {
  const seconds = Number(region.dataset.refreshSeconds) || 5;
  let busy = false;
  async function refresh() {
    if (busy || document.hidden) {
      return;
    }
    busy = true;
    try {
      const response = await fetch(region.dataset.refreshUrl, {
        credentials: "same-origin",
        cache: "no-store",
        headers: { Accept: "text/html" },
      });
      if (!response.ok) {
        throw new Error(`${response.status} ${response.statusText}`);
      }
      region.innerHTML = await response.text();
      region.removeAttribute("data-stale");
      region.dataset.refreshedAt = new Date().toISOString();
    } catch (error) {
      region.dataset.stale = String(error);
    } finally {
      busy = false;
    }
  }
  window.setInterval(refresh, seconds * 1000);
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) {
      refresh();
    }
  });
}

document.querySelectorAll("[data-refresh-url]").forEach(keepRefreshing);
