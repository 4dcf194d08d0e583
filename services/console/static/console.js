// Progressive enhancement: the pages work without it; with it, the flows page refreshes
// itself in place (no flicker, no lost scroll position).
document.addEventListener("DOMContentLoaded", () => {
  for (const region of document.querySelectorAll("[data-refresh]")) {
    const every = Number(region.dataset.every || 10) * 1000;
    const refresh = async () => {
      try {
        const answer = await fetch(region.dataset.refresh, { credentials: "same-origin" });
        if (answer.ok && !answer.redirected) region.innerHTML = await answer.text();
      } catch (error) {
        // Offline for a moment: keep what is shown and try again on the next tick.
      }
    };
    setInterval(refresh, every);
  }
});
