// Channels: the list with live status, adding a channel of any available type (its form built from
// the type's config schema), a channel's page with what connecting it takes: the webhook URL to
// give the provider, the WhatsApp QR code (replaced live) or pair code, the Telegram login.

import { api, blobUrl } from "../api.js";
import * as live from "../live.js";
import {
  badge, busy, confirmDialog, copyable, errorBox, errorText, field, h, humanize, mount, pageHeader, select, timeEl, toast,
} from "../ui.js";

const SECRET_MASK = "********";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export async function render(main, ctx) {
  const [id] = ctx.params;
  if (id === "new") return renderNew(main, ctx);
  if (id && !UUID.test(id)) {
    mount(main, pageHeader("Channel"), h("p", { class: "empty", role: "alert" }, "No such channel."));
    return;
  }
  if (id) return renderChannel(main, id, ctx);
  return renderList(main, ctx);
}

/** Where providers reach this host: `OMNICHAT_PUBLIC_URL` when set, else this page's origin. */
function publicBase() {
  const configured = document.querySelector('meta[name="omnichat-public-url"]')?.content?.trim();
  return (configured || location.origin).replace(/\/+$/, "");
}

async function loadTypes() {
  const types = await api("GET", "/api/channel-types");
  return types.data || types;
}

// ---- the list ---------------------------------------------------------------------------------

async function renderList(main, { canManage }) {
  const grid = h("div", { class: "grid", "aria-live": "polite" });
  const cards = new Map();

  function card(channel) {
    const status = h("span", { class: "status" }, badge(channel.status));
    const reason = h("p", { class: "status-reason", hidden: !channel.statusReason || channel.status === "CONNECTED" }, channel.statusReason || "");
    const el = h(
      "article",
      { class: "card channel-card", dataset: { channelId: channel.id, type: channel.type } },
      h("div", { class: "title" }, h("h2", {}, h("a", { href: `#/channels/${channel.id}` }, channel.name)), status),
      h("div", { class: "muted" }, channel.type, channel.externalId ? ` · ${channel.externalId}` : ""),
      reason,
      h("div", { class: "muted" }, "Added ", timeEl(channel.createdAt)),
    );
    cards.set(channel.id, { el, status, reason, channel });
    return el;
  }

  async function load() {
    const channels = await api("GET", "/api/channels");
    const items = channels.data || channels;
    cards.clear();
    mount(
      grid,
      items.length
        ? items.map(card)
        : h("p", { class: "empty" }, "No channels yet.", canManage ? [" ", h("a", { href: "#/channels/new" }, "Add your first channel")] : ""),
    );
  }

  const offs = [
    live.on("channel-status", async ({ channelInstanceId, status }) => {
      const entry = cards.get(channelInstanceId);
      if (!entry) return load();
      mount(entry.status, badge(status));
      try {
        const channel = await api("GET", `/api/channels/${channelInstanceId}`);
        entry.reason.hidden = !channel.statusReason || channel.status === "CONNECTED";
        entry.reason.textContent = channel.statusReason || "";
      } catch {
        /* deleted meanwhile */
      }
    }),
    live.onReconnect(() => load()),
  ];

  mount(
    main,
    pageHeader("Channels", canManage ? h("a", { class: "button primary", href: "#/channels/new" }, "Add channel") : ""),
    grid,
  );
  try {
    await load();
  } catch (error) {
    offs.forEach((off) => off());
    throw error;
  }
  return () => offs.forEach((off) => off());
}

// ---- config fields from a type's schema -------------------------------------------------------

/** Inputs for a config schema; `current` holds the stored (redacted) values when editing. */
function configFields(schema, current = {}) {
  return schema.map((entry) => {
    const value = current[entry.name];
    const shown = value === undefined || value === null ? "" : typeof value === "string" ? value : JSON.stringify(value);
    const input = entry.secret
      ? h("input", {
          name: `config.${entry.name}`,
          type: "password",
          autocomplete: "new-password",
          required: entry.required && value === undefined,
          placeholder: value === SECRET_MASK ? "Stored: leave empty to keep it" : "",
          dataset: { secret: "1", stored: value === SECRET_MASK ? "1" : "" },
        })
      : h("input", { name: `config.${entry.name}`, value: shown, required: entry.required, autocomplete: "off", spellcheck: "false" });
    const label = entry.required ? `${entry.name} (required)` : entry.name;
    return field(label, input, entry.description);
  });
}

/**
 * The config from a form's `config.*` inputs over `base` (the stored config, secrets as
 * `"********"`, which keeps them): a secret left empty keeps its stored value, another field left
 * empty is removed; JSON for lists, objects and `true`/`false`.
 */
function configFrom(form, schema, base = {}) {
  const config = { ...base };
  for (const entry of schema) {
    const input = form.elements[`config.${entry.name}`];
    if (!input) continue;
    const text = input.value.trim();
    if (input.dataset.secret) {
      if (text) config[entry.name] = text;
      continue;
    }
    if (!text) {
      delete config[entry.name];
      continue;
    }
    if (/^[[{]/.test(text) || text === "true" || text === "false") {
      try {
        config[entry.name] = JSON.parse(text);
        continue;
      } catch {
        throw new Error(`${entry.name}: not valid JSON`);
      }
    }
    config[entry.name] = text;
  }
  return config;
}

// ---- adding a channel -------------------------------------------------------------------------

async function renderNew(main, { canManage, go }) {
  if (!canManage) {
    mount(main, pageHeader("Add channel"), h("p", { class: "empty" }, "Only owners and admins add channels."));
    return;
  }
  const types = await loadTypes();
  const typeSelect = select({ name: "type", required: true }, types.map((t) => [t.type, `${t.name} (${t.type})`]), types[0]?.type);
  const specific = h("div");
  const errors = errorBox();
  const form = h(
    "form",
    { class: "card", "aria-labelledby": "new-title" },
    h("h2", { id: "new-title" }, "Channel"),
    errors.el,
    field("Type", typeSelect),
    specific,
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, "Add channel"), h("a", { href: "#/channels" }, "Cancel")),
  );

  const chosen = () => types.find((t) => t.type === typeSelect.value);
  function showType() {
    const type = chosen();
    errors.clear();
    if (!type) return mount(specific);
    if (type.type === "TELEGRAM_USER") {
      mount(
        specific,
        field("Name", h("input", { name: "name", autocomplete: "off", placeholder: "Support account" })),
        field("Phone number", h("input", { name: "phoneNumber", type: "tel", required: true, autocomplete: "off", placeholder: "+4915112345678" }), "Telegram sends a login code to this account's apps."),
      );
      return;
    }
    mount(
      specific,
      field("Name", h("input", { name: "name", required: true, autocomplete: "off" })),
      type.type === "WHATSAPP" ? h("p", { class: "hint" }, "After adding it, scan the QR code with the phone (WhatsApp > Linked devices) or pair by phone number.") : "",
      configFields(type.configSchema || []),
      type.kind === "plugin"
        ? field("External id (optional)", h("input", { name: "externalId", autocomplete: "off" }), "The provider's account id (a Facebook page id): needed where one webhook URL serves every account.")
        : "",
    );
  }
  typeSelect.addEventListener("change", showType);
  showType();

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    errors.clear();
    const type = chosen();
    try {
      const channel = await busy(form, async () => {
        if (type.type === "TELEGRAM_USER") {
          const body = { phoneNumber: form.elements.phoneNumber.value.trim() };
          if (form.elements.name.value.trim()) body.name = form.elements.name.value.trim();
          const started = await api("POST", "/api/telegram/user/start", body);
          return started.channel || { id: started.channelInstanceId };
        }
        const body = { name: form.elements.name.value.trim(), type: type.type, config: configFrom(form, type.configSchema || []) };
        const externalId = form.elements.externalId?.value.trim();
        if (externalId) body.externalId = externalId;
        return api("POST", "/api/channels", body);
      });
      toast(`${channel.name || "Channel"} added`);
      go(`/channels/${channel.id}`);
    } catch (error) {
      errors.show(error);
    }
  });
  mount(main, pageHeader("Add channel"), form);
}

// ---- one channel ------------------------------------------------------------------------------

async function renderChannel(main, id, { canManage, go }) {
  const [channel, types] = await Promise.all([api("GET", `/api/channels/${id}`), loadTypes()]);
  const type = types.find((t) => t.type === channel.type) || { configSchema: [], kind: "plugin", webhook: null };
  const disposers = [];
  const statusEl = h("span", {}, badge(channel.status));
  const reasonEl = h("p", { class: "status-reason", role: "status" });
  const connection = h("section", { class: "card", "aria-labelledby": "connection-title" });

  let current = channel;
  function showStatus(next) {
    current = next;
    mount(statusEl, badge(next.status));
    reasonEl.textContent = next.status !== "CONNECTED" && next.statusReason ? next.statusReason : "";
  }
  showStatus(channel);

  // The connection panel is drawn again only when the status changed, so a pair code shown or
  // a login halfway through survives other events.
  async function reload() {
    try {
      const next = await api("GET", `/api/channels/${id}`);
      const changed = next.status !== current.status;
      showStatus(next);
      if (changed) renderConnection();
    } catch (error) {
      if (error.status === 404) go("/channels");
    }
  }

  function actionButton(label, work, kind = "secondary") {
    return h("button", {
      type: "button",
      class: kind,
      onclick: async (event) => {
        event.target.disabled = true;
        try {
          await work();
        } catch (error) {
          toast(error.message, "error");
        } finally {
          event.target.disabled = false;
        }
      },
    }, label);
  }

  const connect = () =>
    actionButton("Connect", async () => {
      showStatus(await api("POST", `/api/channels/${id}/connect`));
      renderConnection();
    }, "primary");
  const disconnect = () =>
    actionButton("Disconnect", async () => {
      if (!(await confirmDialog(`Disconnect ${current.name}?`, "Disconnect"))) return;
      showStatus(await api("POST", `/api/channels/${id}/disconnect`));
      renderConnection();
    });

  // The part that differs by type: how it is connected.
  let qr = null;
  function renderConnection() {
    qr?.dispose();
    qr = null;
    const title = h("h2", { id: "connection-title" }, "Connection");
    if (channel.type === "WHATSAPP") {
      qr = whatsappPanel(id, () => current, canManage, showStatus);
      mount(connection, title, qr.el, canManage ? h("div", { class: "actions" }, current.status === "CONNECTED" || current.status === "CONNECTING" ? disconnect() : connect()) : "");
      return;
    }
    if (channel.type === "TELEGRAM_USER") {
      mount(connection, title, telegramLogin(id, () => current, canManage, showStatus, renderConnection));
      return;
    }
    const parts = [title];
    const hook = type.webhook;
    if (hook?.mode === "visitor") {
      const snippet = `<script src="${publicBase()}/widget.js" data-channel="${id}" async></script>`;
      parts.push(
        h("p", {}, "Put this tag on every page of your site where the chat should appear:"),
        copyable(snippet, "Widget embed tag"),
        h("p", {}, h("a", { href: `/widget/demo?channel=${id}`, target: "_blank", rel: "noopener" }, "Open the demo page")),
      );
    } else if (hook?.path) {
      const url = publicBase() + hook.path.replace("{channelInstanceId}", id);
      parts.push(
        h("p", {}, hook.mode === "shared" ? "Webhook URL for every account of this type (set the channel's external id to the account id):" : "Webhook URL to give the provider:"),
        copyable(url, "Webhook URL"),
        h("p", { class: "hint" }, "With OMNICHAT_PUBLIC_URL set, Connect registers it with the provider where the provider allows it (Telegram)."),
      );
    }
    if (canManage) parts.push(h("div", { class: "actions" }, connect(), current.status !== "DISCONNECTED" ? disconnect() : ""));
    mount(connection, parts);
  }
  renderConnection();

  disposers.push(
    live.on("channel-status", ({ channelInstanceId }) => {
      if (channelInstanceId === id) reload();
    }),
    live.onReconnect(reload),
    () => qr?.dispose(),
  );

  const header = pageHeader(channel.name, statusEl);
  const info = h(
    "section",
    { class: "card" },
    h("dl", { class: "details-list" },
      h("dt", {}, "Type"), h("dd", {}, type.name ? `${type.name} · ${channel.type}` : channel.type),
      h("dt", {}, "Channel id"), h("dd", { class: "mono" }, channel.id),
      channel.externalId ? [h("dt", {}, "External id"), h("dd", {}, channel.externalId)] : "",
    ),
    reasonEl,
  );
  mount(main, h("p", {}, h("a", { href: "#/channels" }, "← Channels")), header, info, connection, canManage ? editForm(channel, type, go) : "");
  return () => disposers.forEach((off) => off());
}

function editForm(channel, type, go) {
  const errors = errorBox();
  const schema = type.configSchema || [];
  const form = h(
    "form",
    { class: "card", "aria-labelledby": "edit-title" },
    h("h2", { id: "edit-title" }, "Settings"),
    errors.el,
    field("Name", h("input", { name: "name", value: channel.name, required: true, autocomplete: "off" })),
    configFields(schema, channel.config || {}),
    type.kind === "plugin" ? field("External id", h("input", { name: "externalId", value: channel.externalId || "", autocomplete: "off" })) : "",
    h(
      "div",
      { class: "actions" },
      h("button", { type: "submit", class: "primary" }, "Save"),
      h("button", {
        type: "button",
        class: "danger",
        onclick: async () => {
          if (!(await confirmDialog(`Delete ${channel.name} with its customers, conversations and messages?`, "Delete"))) return;
          try {
            await api("DELETE", `/api/channels/${channel.id}`);
            toast(`${channel.name} deleted`);
            go("/channels");
          } catch (error) {
            toast(error.message, "error");
          }
        },
      }, "Delete channel"),
    ),
  );
  let configChanged = false;
  form.addEventListener("input", (event) => {
    if (event.target.name?.startsWith("config.")) configChanged = true;
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    errors.clear();
    try {
      const saved = await busy(form, async () => {
        const body = { name: form.elements.name.value.trim() };
        // `config` replaces the whole config: sent only when edited, over what is stored now
        // (a connect may have added a field since the page loaded, such as Telegram's secretToken).
        if (configChanged) {
          const fresh = await api("GET", `/api/channels/${channel.id}`);
          body.config = configFrom(form, schema, fresh.config || {});
        }
        if (form.elements.externalId) body.externalId = form.elements.externalId.value.trim() || null;
        return api("PATCH", `/api/channels/${channel.id}`, body);
      });
      configChanged = false;
      form.replaceWith(editForm(saved, type, go));
      toast("Saved");
    } catch (error) {
      errors.show(error);
    }
  });
  return form;
}

// ---- WhatsApp: the QR code, replaced on each `whatsapp-qr`, or a pair code --------------------

function whatsappPanel(id, channel, canManage, showStatus) {
  const box = h("div", { class: "qr-box", "aria-live": "polite" });
  const expires = h("p", { class: "hint" });
  let url = null;
  let version = 0;

  async function showQr() {
    const mine = ++version;
    try {
      const next = await blobUrl(`/api/channels/${id}/whatsapp/qr.svg`);
      if (mine !== version) return URL.revokeObjectURL(next);
      if (url) URL.revokeObjectURL(url);
      url = next;
      mount(box, h("img", { src: url, alt: "WhatsApp pairing QR code: scan it with WhatsApp > Linked devices", width: 272, height: 272, dataset: { version: mine } }));
    } catch (error) {
      if (mine !== version) return;
      mount(box, h("p", { class: "muted" }, error.code === "no_qr_code" ? "Waiting for a QR code…" : errorText(error)));
    }
  }

  function connected() {
    version++;
    if (url) URL.revokeObjectURL(url);
    url = null;
    expires.textContent = "";
    mount(box, h("p", { class: "connected-note" }, "✓ Connected: WhatsApp messages arrive in the inbox."));
  }

  function show() {
    const status = channel().status;
    if (status === "CONNECTED") connected();
    else if (status === "CONNECTING") showQr();
    else mount(box, h("p", { class: "muted" }, "Not connected. Connect to get a QR code."));
  }

  const pairErrors = errorBox();
  const codeOut = h("p", { class: "pair-code", "aria-live": "polite" });
  const pairForm = h(
    "form",
    { class: "pair-form" },
    h("h3", {}, "Or pair with a phone number"),
    pairErrors.el,
    field("Phone number", h("input", { name: "phoneNumber", type: "tel", autocomplete: "off", placeholder: "+4915112345678", required: true }), "WhatsApp on that phone asks for the code under Linked devices > Link with phone number."),
    h("button", { type: "submit", class: "secondary" }, "Get pair code"),
    codeOut,
  );
  pairForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    pairErrors.clear();
    try {
      const result = await busy(pairForm, () => api("POST", `/api/channels/${id}/whatsapp/pair-code`, { phoneNumber: pairForm.elements.phoneNumber.value.trim() }));
      codeOut.textContent = result.code;
    } catch (error) {
      pairErrors.show(error);
    }
  });

  const offs = [
    live.on("whatsapp-qr", (event) => {
      if (event.channelInstanceId !== id) return;
      expires.textContent = event.expiresAt ? `This code expires at ${new Date(event.expiresAt).toLocaleTimeString()}; a new one replaces it.` : "";
      showQr();
    }),
    live.on("whatsapp-connected", (event) => {
      if (event.channelInstanceId !== id) return;
      showStatus({ ...channel(), status: "CONNECTED", statusReason: null });
      connected();
      pairForm.remove();
    }),
  ];
  show();
  const el = h("div", { class: "whatsapp" }, box, expires, canManage && channel().status !== "CONNECTED" ? pairForm : "");
  return {
    el,
    dispose() {
      version++;
      offs.forEach((off) => off());
      if (url) URL.revokeObjectURL(url);
    },
  };
}

// ---- Telegram user account: phone -> code -> two-step password --------------------------------

function telegramLogin(id, channel, canManage, showStatus, redraw) {
  const wrap = h("div");
  const errors = errorBox();

  function phoneStep() {
    const form = h(
      "form",
      {},
      h("p", {}, "Sign in with the account's phone number: Telegram sends a code to its apps."),
      errors.el,
      field("Phone number", h("input", { name: "phoneNumber", type: "tel", required: true, autocomplete: "off", placeholder: "+4915112345678" })),
      h("button", { type: "submit", class: "primary" }, "Send code"),
    );
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      errors.clear();
      try {
        const result = await busy(form, () => api("POST", "/api/telegram/user/start", { phoneNumber: form.elements.phoneNumber.value.trim(), channelInstanceId: id }));
        if (result.channel) showStatus(result.channel);
        codeStep();
      } catch (error) {
        errors.show(error);
      }
    });
    mount(wrap, form);
  }

  function codeStep(passwordHint) {
    const needPassword = passwordHint !== undefined;
    const form = h(
      "form",
      {},
      errors.el,
      needPassword
        ? [h("p", {}, passwordHint), field("Two-step verification password", h("input", { name: "password", type: "password", required: true, autocomplete: "current-password" }))]
        : field("Login code", h("input", { name: "code", inputmode: "numeric", required: true, autocomplete: "one-time-code" }), "The code Telegram sent to the account's apps."),
      h("div", { class: "actions" },
        h("button", { type: "submit", class: "primary" }, needPassword ? "Sign in" : "Confirm code"),
        h("button", { type: "button", class: "link", onclick: () => { errors.clear(); phoneStep(); } }, "Start again"),
      ),
    );
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      errors.clear();
      const body = { channelInstanceId: id };
      if (needPassword) body.password = form.elements.password.value;
      else body.code = form.elements.code.value.trim();
      try {
        const result = await busy(form, () => api("POST", "/api/telegram/user/confirm", body));
        showStatus(result.channel);
        toast(`Signed in as ${result.account?.name || result.account?.username || "the account"}`);
        redraw();
      } catch (error) {
        if (error.code === "password_required") {
          const hint = /hint: (.*)\)\s*$/.exec(error.message)?.[1];
          return codeStep(hint ? `Two-step verification is on for this account. Password hint: ${hint}` : "Two-step verification is on for this account.");
        }
        errors.show(error);
        if (error.code === "no_pending_login" || error.code === "login_expired") phoneStep();
      }
    });
    mount(wrap, form);
    form.querySelector("input")?.focus();
  }

  const status = channel().status;
  if (status === "CONNECTED") {
    mount(
      wrap,
      h("p", { class: "connected-note" }, "✓ Signed in: the account's messages arrive in the inbox."),
      canManage
        ? h("button", {
            type: "button",
            class: "danger",
            onclick: async () => {
              if (!(await confirmDialog("Sign the account out of Telegram and stop listening?", "Sign out"))) return;
              try {
                showStatus(await api("POST", "/api/telegram/user/logout", { channelInstanceId: id }));
                redraw();
              } catch (error) {
                toast(error.message, "error");
              }
            },
          }, "Sign out of Telegram")
        : "",
    );
  } else if (!canManage) mount(wrap, h("p", { class: "muted" }, `${humanize(status)}. An owner or admin signs the account in.`));
  else if (status === "CONNECTING") codeStep();
  else phoneStep();
  return wrap;
}
