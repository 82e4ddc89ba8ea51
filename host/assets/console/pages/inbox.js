// The inbox: conversations (filtered by status, channel and assignee) with unread markers, kept
// live by the socket; a conversation's thread with attachments, delivery status and typing; the
// composer; assign, close, snooze, reopen, the bot's pause; the customer and the agent runs.

import { api, blobUrl, current } from "../api.js";
import * as live from "../live.js";
import { badge, busy, errorBox, field, h, humanize, mount, select, timeEl, toast, when } from "../ui.js";

const STATUSES = [["OPEN", "Open"], ["SNOOZED", "Snoozed"], ["CLOSED", "Closed"], ["", "Any status"]];
const ASSIGNEES = [["", "Anyone"], ["me", "Me"], ["none", "Unassigned"]];
const ATTACHMENT_TYPES = ["image", "video", "audio", "voice", "document", "sticker"];
const TYPING_MS = 6000;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

let view = null;

export function update(params) {
  view?.open(params[0] || null);
}

export async function render(main, { params }) {
  main.classList.add("wide");
  const me = current()?.user;
  const filters = { status: "OPEN", channel: "", assignee: "" };
  const customers = new Map(); // id -> Promise<customer>
  let channels = new Map();
  let users = [];
  let conversations = []; // InboxConversation, newest activity first
  let nextCursor = null;
  let openId = null;
  let thread = null; // the open conversation's view

  const list = h("ul", { class: "conv-list", "aria-label": "Conversations" });
  const more = h("button", { type: "button", class: "secondary small more", hidden: true, onclick: () => loadList(true).catch((error) => toast(error.message, "error")) }, "Load more");
  const threadPane = h("section", { class: "thread-pane", "aria-label": "Conversation" });
  const layout = h("div", { class: "inbox" });

  const customerOf = (id) => {
    if (!id) return Promise.resolve(null);
    if (!customers.has(id)) customers.set(id, api("GET", `/api/customers/${id}`).catch(() => null));
    return customers.get(id);
  };
  const displayName = (c) => c?.name || (c?.username ? `@${c.username}` : "") || c?.phone || c?.externalId || "Customer";
  const channelLabel = (id) => {
    const c = channels.get(id);
    return c ? `${c.name} · ${c.type}` : "";
  };
  const userName = (id) => {
    const u = users.find((x) => x.id === id);
    return u ? u.name || u.email : "someone";
  };
  // A colleague added since the page loaded: the users are read again (once per unknown id).
  const asked = new Set();
  async function knowUser(id) {
    if (!id || users.some((u) => u.id === id) || asked.has(id)) return;
    asked.add(id);
    try {
      const list = await api("GET", "/api/users");
      users = list.data || list;
    } catch {
      /* the name stays unknown */
    }
  }

  // ---- the list ----
  function matches(conv) {
    if (filters.status && conv.status !== filters.status) return false;
    if (filters.channel && conv.channelInstanceId !== filters.channel) return false;
    if (filters.assignee === "me" && conv.assigneeId !== me?.id) return false;
    if (filters.assignee === "none" && conv.assigneeId) return false;
    return true;
  }

  function query(cursor) {
    const q = new URLSearchParams({ limit: "30" });
    if (filters.status) q.set("status", filters.status);
    if (filters.channel) q.set("channelInstanceId", filters.channel);
    if (filters.assignee) q.set("assigneeId", filters.assignee);
    if (cursor) q.set("cursor", cursor);
    return `/api/conversations?${q}`;
  }

  // Only the latest request's answer is drawn (a filter changed meanwhile drops the older one).
  let listGeneration = 0;
  async function loadList(append = false) {
    const generation = ++listGeneration;
    const page = await api("GET", query(append ? nextCursor : null));
    if (generation !== listGeneration) return;
    conversations = append ? [...conversations, ...page.data.filter((c) => !conversations.some((x) => x.id === c.id))] : page.data;
    nextCursor = page.nextCursor;
    more.hidden = !nextCursor;
    drawList();
  }

  function item(conv) {
    const name = h("span", { class: "name" }, "…");
    customerOf(conv.customerId).then((c) => (name.textContent = displayName(c)));
    const unread = conv.unreadCount > 0;
    return h(
      "li",
      { class: unread ? "has-unread" : "", dataset: { conversationId: conv.id } },
      h(
        "a",
        { href: `#/inbox/${conv.id}`, "aria-current": conv.id === openId ? "true" : undefined },
        name,
        h("span", { class: "side" }, timeEl(conv.lastMessageAt), unread ? h("span", { class: "unread" }, String(conv.unreadCount), h("span", { class: "sr-only" }, " unread")) : ""),
        h(
          "span",
          { class: "meta" },
          channelLabel(conv.channelInstanceId),
          conv.status !== "OPEN" ? badge(conv.status) : "",
          conv.assigneeId ? h("span", {}, `→ ${conv.assigneeId === me?.id ? "me" : userName(conv.assigneeId)}`) : "",
        ),
      ),
    );
  }

  function drawList() {
    // Drawn again on every change: the focused conversation keeps the focus.
    const focused = list.contains(document.activeElement) ? document.activeElement.closest("li")?.dataset.conversationId : null;
    if (!conversations.length) mount(list, h("li", { class: "empty" }, "No conversations here yet."));
    else mount(list, conversations.map(item));
    if (focused) list.querySelector(`li[data-conversation-id="${focused}"] a`)?.focus();
  }

  function upsert(conv, { toTop = false } = {}) {
    const at = conversations.findIndex((c) => c.id === conv.id);
    if (!matches(conv)) {
      if (at >= 0) conversations.splice(at, 1);
    } else if (at >= 0) {
      conversations[at] = { ...conversations[at], ...conv };
      if (toTop) conversations.unshift(...conversations.splice(at, 1));
    } else {
      conversations.unshift(conv);
    }
    conversations.sort((a, b) => String(b.lastMessageAt).localeCompare(String(a.lastMessageAt)));
    drawList();
  }

  // ---- the filters ----
  const statusFilter = select({ name: "status" }, STATUSES, filters.status);
  const channelFilter = select({ name: "channel" }, [["", "All channels"]], "");
  const assigneeFilter = select({ name: "assignee" }, ASSIGNEES, "");
  for (const [el, key] of [[statusFilter, "status"], [channelFilter, "channel"], [assigneeFilter, "assignee"]]) {
    el.addEventListener("change", () => {
      filters[key] = el.value;
      nextCursor = null;
      more.hidden = true;
      loadList().catch((error) => toast(error.message, "error"));
    });
  }

  // ---- marking read ----
  let readTimer = null;
  function markRead(id) {
    clearTimeout(readTimer);
    readTimer = setTimeout(async () => {
      if (document.visibilityState !== "visible" || id !== openId) return;
      try {
        await api("POST", `/api/conversations/${id}/read`);
        const conv = conversations.find((c) => c.id === id);
        if (conv && conv.unreadCount) upsert({ ...conv, unreadCount: 0 });
      } catch {
        /* not fatal */
      }
    }, 300);
  }
  const onVisible = () => openId && document.visibilityState === "visible" && markRead(openId);
  document.addEventListener("visibilitychange", onVisible);

  // ---- the thread ----
  let openSeq = 0;
  async function open(id, { focus = false } = {}) {
    if (id && !UUID.test(id)) id = null;
    if (id === openId && thread?.id === id) return;
    const seq = ++openSeq;
    thread?.dispose();
    thread = null;
    openId = id;
    layout.classList.toggle("has-thread", Boolean(id));
    for (const a of list.querySelectorAll("a")) {
      if (a.closest("li")?.dataset.conversationId === id) a.setAttribute("aria-current", "true");
      else a.removeAttribute("aria-current");
    }
    if (!id) {
      mount(threadPane, h("div", { class: "empty" }, "Pick a conversation."));
      return;
    }
    mount(threadPane, h("div", { class: "empty" }, "Loading…"));
    try {
      const opened = await openThread(id);
      if (seq !== openSeq) return opened.dispose();
      thread = opened;
      mount(threadPane, opened.el);
      if (focus) opened.focus();
      markRead(id);
      // Whatever arrived while it loaded.
      await opened.refresh().catch(() => {});
    } catch (error) {
      if (seq === openSeq) mount(threadPane, h("div", { class: "empty", role: "alert" }, error.status === 404 ? "This conversation does not exist." : error.message));
    }
  }

  async function openThread(id) {
    let [conv, page, runs] = await Promise.all([
      api("GET", `/api/conversations/${id}`),
      api("GET", `/api/conversations/${id}/messages?limit=50`),
      api("GET", `/api/conversations/${id}/agent-runs?limit=10`).catch(() => []),
    ]);
    let conversation = conv;
    let cursor = page.nextCursor;
    const customer = await customerOf(conv.customerId);
    const messages = h("ol", { class: "messages", role: "log", "aria-label": "Messages", "aria-relevant": "additions" });
    const typingEl = h("div", { class: "typing", "aria-live": "polite" });
    const shown = new Map(); // message id -> {el, message}
    const blobs = [];

    const earlier = h("button", {
      type: "button",
      class: "secondary small more",
      hidden: !cursor,
      onclick: async () => {
        const older = await api("GET", `/api/conversations/${id}/messages?limit=50&cursor=${encodeURIComponent(cursor)}`).catch((error) => {
          toast(error.message, "error");
          return null;
        });
        if (!older) return;
        cursor = older.nextCursor;
        earlier.hidden = !cursor;
        const anchor = earlierItem.nextSibling;
        for (const message of older.data.slice().reverse()) if (!shown.has(message.id)) messages.insertBefore(messageEl(message).el, anchor);
      },
    }, "Load earlier messages");
    const earlierItem = h("li", { class: "earlier" }, earlier);

    function sender(message) {
      if (message.direction === "INBOUND") return displayName(customer);
      if (message.senderAgentId) return "AI agent";
      if (message.senderUserId) return message.senderUserId === me?.id ? "You" : userName(message.senderUserId);
      return message.direction === "SYSTEM" ? "" : "From the phone";
    }

    function attachmentEl(message, attachment, index) {
      const label = attachment.fileName || `${attachment.kind} attachment`;
      if (attachment.url) {
        // A provider's URL (a customer's location, a Messenger attachment): a link only when http(s).
        if (!/^https?:\/\//i.test(attachment.url)) return h("span", { class: "attachment muted" }, label);
        return h("a", { class: "attachment", href: attachment.url, target: "_blank", rel: "noopener noreferrer" }, `📎 ${label}`);
      }
      const path = `/api/messages/${message.id}/media?index=${index}`;
      if (attachment.kind === "image" || attachment.kind === "sticker") {
        const img = h("img", { class: "media", alt: label, loading: "lazy" });
        blobUrl(path)
          .then((src) => {
            blobs.push(src);
            img.src = src;
          })
          .catch((error) => img.replaceWith(h("span", { class: "attachment muted" }, `${label}: ${error.message}`)));
        return img;
      }
      if (["location", "contact", "other"].includes(attachment.kind) && !attachment.mimeType) {
        return h("span", { class: "attachment muted" }, label);
      }
      return h("button", {
        type: "button",
        class: "link attachment",
        onclick: async () => {
          try {
            const src = await blobUrl(path);
            blobs.push(src);
            const a = h("a", { href: src, download: attachment.fileName || `${attachment.kind}-${message.id}` });
            document.body.append(a);
            a.click();
            a.remove();
          } catch (error) {
            toast(error.message, "error");
          }
        },
      }, `📎 ${label}`);
    }

    function messageEl(message) {
      const kind = message.direction.toLowerCase();
      const delivery = h("span", { class: "delivery" });
      const error = h("div", { class: "error-text" });
      const el = h(
        "li",
        { class: `msg ${kind}`, dataset: { messageId: message.id, direction: message.direction } },
        message.text ? h("div", { class: "text" }, message.text) : "",
        (message.attachments || []).map((a, i) => attachmentEl(message, a, i)),
        h("div", { class: "foot" }, sender(message) ? h("span", {}, sender(message)) : "", timeEl(message.createdAt), message.direction === "OUTBOUND" ? delivery : ""),
        error,
      );
      const entry = { el, message, delivery, error };
      showDelivery(entry, message);
      shown.set(message.id, entry);
      return entry;
    }

    /** The status and error of a shown message, changed in place (its media is not fetched again). */
    function showDelivery(entry, message) {
      entry.message = message;
      entry.el.dataset.status = message.status;
      mount(entry.delivery, badge(message.status));
      entry.error.hidden = !message.error;
      entry.error.textContent = message.error || "";
    }

    /** A message created or changed: a newer version of a shown one updates it; a new one is appended. */
    function add(message, { append = true } = {}) {
      const existing = shown.get(message.id);
      if (existing) {
        if (Date.parse(message.updatedAt) >= Date.parse(existing.message.updatedAt)) showDelivery(existing, message);
        return;
      }
      if (!append) return;
      const nearBottom = messages.scrollHeight - messages.scrollTop - messages.clientHeight < 80;
      messages.append(messageEl(message).el);
      if (nearBottom || message.direction !== "INBOUND") messages.scrollTop = messages.scrollHeight;
    }

    mount(messages, earlierItem, page.data.slice().reverse().map((m) => messageEl(m).el));

    // Header: who, where, and what can be done.
    const head = h("div", { class: "thread-head" });
    const detailsId = `details-${id}`;
    const details = h("aside", { class: "details", id: detailsId, "aria-label": "Details" });
    let detailsOpen = false;
    function drawHead() {
      // Drawn again after each change: the focused control keeps the focus.
      const focused = head.contains(document.activeElement) ? document.activeElement.dataset.action || "heading" : null;
      const action = (name, label, body) => h("button", { type: "button", class: "secondary small", dataset: { action: name }, onclick: () => patch(body) }, label);
      const assignee = select(
        { "aria-label": "Assign to", dataset: { action: "assign" } },
        [["", "Unassigned"], ...users.map((u) => [u.id, u.id === me?.id ? `Me (${u.name || u.email})` : u.name || u.email])],
        conversation.assigneeId || "",
      );
      assignee.addEventListener("change", () => patch({ assigneeId: assignee.value || null }));
      const statusActions =
        conversation.status === "OPEN"
          ? [action("close", "Close", { status: "CLOSED" }), action("snooze", "Snooze", { status: "SNOOZED" })]
          : [action("reopen", "Reopen", { status: "OPEN" })];
      const bot = conversation.botStatus === "PAUSED" ? action("bot", "Resume bot", { botStatus: "ACTIVE" }) : action("bot", "Pause bot", { botStatus: "PAUSED" });
      mount(
        head,
        h("div", {},
          h("a", { class: "back button secondary small", href: "#/inbox" }, "← Back"),
          h("h2", { tabindex: "-1", dataset: { action: "heading" } }, displayName(customer)),
          h("div", { class: "muted" }, channelLabel(conversation.channelInstanceId), " ", badge(conversation.status), " ", h("span", { title: "The AI agent on this conversation" }, "bot ", badge(conversation.botStatus))),
        ),
        h("div", { class: "actions" }, assignee, statusActions, bot,
          h("button", { type: "button", class: "secondary small details-toggle", dataset: { action: "details" }, "aria-expanded": String(detailsOpen), "aria-controls": detailsId, onclick: (e) => {
            detailsOpen = details.classList.toggle("open");
            e.currentTarget.setAttribute("aria-expanded", String(detailsOpen));
          } }, "Details")),
      );
      if (focused) (head.querySelector(`[data-action="${focused}"]`) || head.querySelector("h2"))?.focus();
    }

    function drawDetails(agentRuns) {
      const row = (label, value) => (value ? [h("dt", {}, label), h("dd", {}, value)] : "");
      mount(
        details,
        h("h3", {}, "Customer"),
        h("dl", {},
          row("Name", customer?.name),
          row("Username", customer?.username ? `@${customer.username}` : ""),
          row("Phone", customer?.phone),
          row("Id at the channel", customer?.externalId),
          row("Channel", channelLabel(conversation.channelInstanceId)),
          row("Customer since", when(customer?.createdAt)),
        ),
        h("h3", {}, "Conversation"),
        h("dl", {},
          row("Started", when(conversation.createdAt)),
          row("Assignee", conversation.assigneeId ? userName(conversation.assigneeId) : "nobody"),
          row("Bot", conversation.botStatus + (conversation.botPausedUntil ? ` until ${when(conversation.botPausedUntil)}` : "")),
        ),
        h("h3", {}, "Agent runs"),
        agentRuns.length
          ? h("ul", { class: "runs" }, agentRuns.map((run) =>
              h("li", {},
                badge(run.outcome), " ", timeEl(run.createdAt),
                h("div", { class: "muted" }, [(run.agents || []).map((a) => a.name).join(" → "), run.mode, `${run.totalTokens} tokens`, `${run.latencyMs} ms`].filter(Boolean).join(" · ")),
                run.error ? h("div", { class: "error-text" }, run.error) : "",
              )))
          : h("p", { class: "muted" }, "No agent has answered here."),
      );
    }

    async function patch(body) {
      try {
        const next = await api("PATCH", `/api/conversations/${id}`, body);
        conversation = { ...conversation, ...next };
        drawHead();
        drawDetails(runs);
        upsert({ ...next, unreadCount: 0 });
      } catch (error) {
        toast(error.message, "error");
        drawHead();
      }
    }

    // Composer.
    const errors = errorBox();
    const text = h("textarea", { name: "text", rows: 2, placeholder: "Write a reply…", title: "Enter sends, Shift+Enter starts a new line" });
    const attachments = h("div", { class: "attachments" });
    const addAttachment = () => {
      const rowEl = h("div", { class: "attach-row" },
        field("Attachment URL", h("input", { name: "attachment.url", type: "url", required: true, placeholder: "https://example.com/photo.jpg" })),
        field("Type", select({ name: "attachment.type" }, ATTACHMENT_TYPES.map((t) => [t, t]), "image")),
        field("File name", h("input", { name: "attachment.name", autocomplete: "off" })),
        h("button", { type: "button", class: "secondary small", "aria-label": "Remove this attachment", onclick: () => rowEl.remove() }, "Remove"),
      );
      attachments.append(rowEl);
      rowEl.querySelector("input").focus();
    };
    const composer = h(
      "form",
      { class: "composer", "aria-label": "Composer" },
      errors.el,
      attachments,
      h("div", { class: "send-row" },
        h("label", { class: "sr-only", for: "reply-text" }, "Reply"),
        text,
        h("button", { type: "button", class: "secondary", onclick: addAttachment, title: "Attach a file by URL" }, "Attach"),
        h("button", { type: "submit", class: "primary" }, "Send"),
      ),
    );
    text.id = "reply-text";
    let typingSent = 0;
    let typingStop = null;
    text.addEventListener("input", () => {
      if (Date.now() - typingSent > 3000) {
        live.typing(id, true);
        typingSent = Date.now();
      }
      clearTimeout(typingStop);
      typingStop = setTimeout(() => {
        live.typing(id, false);
        typingSent = 0;
      }, 4000);
    });
    text.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        composer.requestSubmit();
      }
    });
    composer.addEventListener("submit", async (event) => {
      event.preventDefault();
      errors.clear();
      const rows = [...attachments.querySelectorAll(".attach-row")].map((r) => ({
        url: r.querySelector('[name="attachment.url"]').value.trim(),
        type: r.querySelector('[name="attachment.type"]').value,
        name: r.querySelector('[name="attachment.name"]').value.trim() || undefined,
      }));
      const body = { conversationId: id };
      if (text.value.trim()) body.text = text.value;
      if (rows.length) body.attachments = rows;
      if (!body.text && !rows.length) return;
      try {
        const message = await busy(composer, () => api("POST", "/api/messages/send", body, { headers: { "idempotency-key": crypto.randomUUID() } }));
        add(message);
        text.value = "";
        attachments.replaceChildren();
        clearTimeout(typingStop);
        live.typing(id, false);
        typingSent = 0;
        text.focus();
      } catch (error) {
        errors.show(error);
      }
    });

    drawHead();
    drawDetails(runs);
    const el = h("div", { class: "thread" }, head, h("div", { class: "thread-body" }, h("div", { class: "thread-main" }, messages, typingEl, composer), details));
    requestAnimationFrame(() => (messages.scrollTop = messages.scrollHeight));

    let typingTimer = null;
    let runsTimer = null;
    async function reloadRuns() {
      runs = await api("GET", `/api/conversations/${id}/agent-runs?limit=10`).catch(() => runs);
      drawDetails(runs);
    }
    // An agent's reply is announced before its run is written: read the runs until it is there.
    async function runOf(messageId, tries = 6) {
      for (let i = 0; i < tries && !runs.some((r) => r.messageId === messageId); i++) {
        await new Promise((r) => (runsTimer = setTimeout(r, 250 * 2 ** i)));
        await reloadRuns();
      }
    }
    return {
      el,
      id,
      add(message, options) {
        add(message, options);
        if (message.senderAgentId && !runs.some((r) => r.messageId === message.id)) runOf(message.id);
      },
      focus() {
        head.querySelector("h2")?.focus();
      },
      updated(next) {
        conversation = { ...conversation, ...next };
        drawHead();
        drawDetails(runs);
      },
      /** Everything the thread shows, read again (after a reconnect, or what arrived while it opened). */
      async refresh() {
        const [fresh, latest] = await Promise.all([api("GET", `/api/conversations/${id}/messages?limit=50`), api("GET", `/api/conversations/${id}`)]);
        for (const message of fresh.data.slice().reverse()) add(message);
        conversation = { ...conversation, ...latest };
        drawHead();
        await reloadRuns();
      },
      typing(event) {
        clearTimeout(typingTimer);
        if (!event.typing) {
          typingEl.textContent = "";
          return;
        }
        typingEl.textContent = event.from === "agent" ? `${userName(event.userId)} is typing…` : `${displayName(customer)} is typing…`;
        typingTimer = setTimeout(() => (typingEl.textContent = ""), TYPING_MS);
      },
      dispose() {
        clearTimeout(typingTimer);
        clearTimeout(runsTimer);
        clearTimeout(typingStop);
        // Whoever watched this agent type is told it stopped.
        if (typingSent) live.typing(id, false);
        blobs.forEach((b) => URL.revokeObjectURL(b));
      },
    };
  }

  // ---- live ----
  const offs = [
    live.on("message-created", async ({ conversationId, message }) => {
      const isOpen = conversationId === openId && thread;
      if (isOpen) {
        thread.add(message);
        thread.typing({ typing: false });
      }
      const known = conversations.find((c) => c.id === conversationId);
      if (known) {
        const unread = message.direction === "INBOUND" && !(isOpen && document.visibilityState === "visible");
        upsert({ ...known, lastMessageAt: message.createdAt, unreadCount: (known.unreadCount || 0) + (unread ? 1 : 0) }, { toTop: true });
      } else {
        try {
          upsert(await api("GET", `/api/conversations/${conversationId}`));
        } catch {
          /* gone */
        }
      }
      if (isOpen && message.direction === "INBOUND") markRead(conversationId);
    }),
    live.on("message-updated", ({ conversationId, message }) => {
      if (conversationId === openId && thread) thread.add(message, { append: false });
    }),
    live.on("conversation-updated", async ({ conversation }) => {
      const known = conversations.find((c) => c.id === conversation.id);
      if (known) upsert({ ...known, ...conversation });
      else if (matches(conversation)) {
        try {
          upsert(await api("GET", `/api/conversations/${conversation.id}`));
        } catch {
          /* gone */
        }
      }
      if (conversation.id === openId && thread) thread.updated(conversation);
    }),
    live.on("conversation-read", ({ conversationId }) => {
      const known = conversations.find((c) => c.id === conversationId);
      if (known && known.unreadCount) upsert({ ...known, unreadCount: 0 });
    }),
    live.on("typing", async (event) => {
      if (event.conversationId !== openId || !thread || event.userId === me?.id) return;
      if (event.from === "agent" && event.typing) await knowUser(event.userId);
      if (event.conversationId === openId) thread?.typing(event);
    }),
    live.onReconnect(async () => {
      await loadList().catch(() => {});
      if (openId && !thread) await open(openId).catch(() => {});
      else await thread?.refresh().catch(() => {});
    }),
  ];

  const dispose = () => {
    view = null;
    main.classList.remove("wide");
    thread?.dispose();
    clearTimeout(readTimer);
    document.removeEventListener("visibilitychange", onVisible);
    offs.forEach((off) => off());
  };

  // ---- first load (a failure leaves no handler behind) ----
  try {
    const [channelList, userList] = await Promise.all([api("GET", "/api/channels"), api("GET", "/api/users").catch(() => [])]);
    channels = new Map((channelList.data || channelList).map((c) => [c.id, c]));
    users = userList.data || userList;
    mount(channelFilter, [["", "All channels"], ...[...channels.values()].map((c) => [c.id, `${c.name} (${humanize(c.type)})`])].map(([v, l]) => h("option", { value: v }, l)));

    mount(
      layout,
      h("section", { class: "conv-pane", "aria-labelledby": "inbox-title" },
        h("div", { class: "filters" },
          h("h1", { id: "inbox-title", class: "sr-only", tabindex: "-1" }, "Inbox"),
          field("Status", statusFilter),
          field("Channel", channelFilter),
          field("Assignee", assigneeFilter),
        ),
        list,
        more,
      ),
      threadPane,
    );
    mount(main, layout);
    await loadList();
    await open(params[0] || null);
  } catch (error) {
    dispose();
    throw error;
  }

  view = { open: (id) => open(id, { focus: true }).catch((error) => toast(error.message, "error")) };
  return dispose;
}
