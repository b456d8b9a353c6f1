// The providers page is rendered by the server (it works without JavaScript). A circuit
// opening or closing changes where each model stands for routing: the page is read again
// and its providers swapped in, so what it shows is the server's rendering, always.
import { reportError } from "./common.js";
import { coalesce, follow, refreshParts, updatedNow } from "./live.js";

const live = document.getElementById("live");

follow(
  ["circuits"],
  coalesce(async () => {
    try {
      await refreshParts(["#providers", "#providers-error"]);
      updatedNow(live, "A circuit changed: updated");
    } catch (error) {
      reportError(document.getElementById("providers-error"), error);
    }
  }, 300),
  { marker: live },
);
