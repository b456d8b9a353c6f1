// Live updates for the console's pages: one socket to /ws/realtime/ (the session cookie
// authenticates it), subscribed to the topics a page shows, and a way to refresh parts
// of the page from the server's own rendering of it (one request, no client templates).

// Subscribe to `topics`; `onEvent({topic, event, data})` for each event. `marker` gets
// data-following (the accepted topics) while the subscription holds, for people and tests.
export function follow(topics, onEvent, { marker = null } = {}) {
  let delay = 1000;
  const connect = () => {
    const scheme = window.location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${window.location.host}/ws/realtime/`);
    socket.addEventListener("message", (message) => {
      let data;
      try {
        data = JSON.parse(message.data);
      } catch {
        return;
      }
      if (data.type === "ready") {
        socket.send(JSON.stringify({ type: "subscribe", topics }));
      } else if (data.type === "subscribed") {
        if (marker && data.accepted.length) marker.dataset.following = data.topics.join(" ");
        delay = 1000;
      } else if (data.type === "event") {
        onEvent(data);
      }
    });
    socket.addEventListener("close", (event) => {
      if (marker) delete marker.dataset.following;
      // 44xx: signed out or no longer allowed: retrying would be refused again.
      if (event.code >= 4400 && event.code < 4500) return;
      setTimeout(connect, delay);
      delay = Math.min(delay * 2, 30000);
    });
  };
  connect();
}

// Run `task` after events stop arriving for `wait` ms (a burst of usage is one refresh),
// and never two at once.
export function coalesce(task, wait = 400) {
  let timer = null;
  let running = null;
  let again = false;
  const run = async () => {
    if (running) {
      again = true;
      return;
    }
    running = (async () => {
      try {
        await task();
      } finally {
        running = null;
        if (again) {
          again = false;
          schedule();
        }
      }
    })();
  };
  const schedule = () => {
    clearTimeout(timer);
    timer = setTimeout(run, wait);
  };
  return schedule;
}

// Read this page again and put the server's fresh rendering of `selectors` in place.
export async function refreshParts(selectors, url = window.location.href) {
  const response = await fetch(url, { headers: { Accept: "text/html" }, credentials: "same-origin" });
  if (!response.ok || response.redirected) throw new Error(`The page could not be read again (${response.status}).`);
  const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
  for (const selector of selectors) {
    const next = fresh.querySelector(selector);
    const here = document.querySelector(selector);
    if (next && here) here.replaceWith(document.importNode(next, true));
  }
  return fresh;
}

export function updatedNow(node, what = "Updated") {
  if (!node) return;
  node.textContent = `${what} at ${new Date().toLocaleTimeString()}.`;
  node.dataset.updates = String(Number(node.dataset.updates || 0) + 1);
}
