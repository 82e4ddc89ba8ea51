// The outbound queue: dead letters (by default) with their last error, retried with one click;
// the list follows delivery changes live.

import { api } from "../api.js";
import * as live from "../live.js";
import { badge, field, h, mount, pageHeader, select, timeEl, toast } from "../ui.js";

const STATUSES = [
  ["DEAD", "Dead letters"],
  ["FAILED", "Failed"],
  ["PENDING", "Pending"],
  ["SENDING", "Sending"],
  ["SENT", "Sent"],
  ["", "All"],
];

export async function render(main) {
  const filter = select({ name: "status" }, STATUSES, "DEAD");
  const list = h("div", { class: "table-wrap", "aria-live": "polite" });
  let channels = new Map();

  async function load() {
    const status = filter.value;
    const [jobs, channelList] = await Promise.all([
      api("GET", `/api/queue${status ? `?status=${status}` : ""}`),
      channels.size ? null : api("GET", "/api/channels"),
    ]);
    if (channelList) channels = new Map((channelList.data || channelList).map((c) => [c.id, c]));
    const items = jobs.data || jobs;
    if (!items.length) {
      mount(list, h("p", { class: "empty" }, status === "DEAD" ? "No dead letters: every reply was delivered or is still being tried." : "Nothing here."));
      return;
    }
    const rows = items.map((job) => {
      const channel = channels.get(job.channelInstanceId);
      const retry = ["DEAD", "FAILED"].includes(job.status)
        ? h("button", {
            type: "button",
            class: "primary small",
            "aria-label": `Retry the reply ${job.messageId}`,
            onclick: async (event) => {
              event.target.disabled = true;
              try {
                await api("POST", `/api/queue/${job.id}/retry`);
                toast("Queued again");
                await load();
              } catch (error) {
                toast(error.message, "error");
                event.target.disabled = false;
              }
            },
          }, "Retry")
        : "";
      return h(
        "tr",
        { dataset: { jobId: job.id, status: job.status } },
        h("td", {}, channel ? `${channel.name} (${channel.type})` : job.channelInstanceId),
        h("td", {}, badge(job.status)),
        h("td", {}, `${job.attempts} / ${job.maxAttempts}`),
        h("td", { class: "error-text" }, job.lastError || "—"),
        h("td", {}, job.status === "PENDING" ? timeEl(job.nextRetryAt) : timeEl(job.updatedAt)),
        h("td", {}, retry),
      );
    });
    mount(
      list,
      h(
        "table",
        { class: "table" },
        h("caption", { class: "sr-only" }, "Outbound queue"),
        h("thead", {}, h("tr", {}, ["Channel", "Status", "Attempts", "Last error", "When", ""].map((c) => h("th", { scope: "col" }, c)))),
        h("tbody", {}, rows),
      ),
    );
  }

  const reload = () => load().catch((error) => toast(error.message, "error"));
  filter.addEventListener("change", reload);
  let pending = null;
  const soon = () => {
    clearTimeout(pending);
    pending = setTimeout(reload, 300);
  };
  const offs = [live.on("message-updated", soon), live.onReconnect(reload)];

  mount(
    main,
    pageHeader("Queue", h("button", { type: "button", class: "secondary", onclick: reload }, "Refresh")),
    h("p", { class: "muted" }, "Replies waiting to be delivered, and those that could not be. A dead letter is retried with its attempts reset."),
    h("div", { class: "filters" }, field("Show", filter)),
    list,
  );
  const dispose = () => {
    clearTimeout(pending);
    offs.forEach((off) => off());
  };
  try {
    await load();
  } catch (error) {
    dispose();
    throw error;
  }
  return dispose;
}
