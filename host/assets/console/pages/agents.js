// AI agents and teams: the lists, and a form to create or edit each. (Pausing the bot on a
// conversation and its agent runs are in the inbox's thread.)

import { api } from "../api.js";
import { badge, busy, checkbox, confirmDialog, errorBox, field, h, mount, pageHeader, select, toast } from "../ui.js";

const TOOLS = [
  ["handoff_to_human", "Hand off to a human"],
  ["close_conversation", "Close the conversation"],
  ["snooze_conversation", "Snooze the conversation"],
  ["get_customer", "Read the customer's details"],
];
const MATCH_MODES = [["CONTAINS", "contains"], ["EXACT", "is exactly"], ["STARTS_WITH", "starts with"], ["REGEX", "matches the regex"]];

export async function render(main, { canManage }) {
  const agentsBox = h("div");
  const teamsBox = h("div");
  const editor = h("div");
  let agents = [];
  let channels = [];

  async function load() {
    const [agentList, teamList, channelList] = await Promise.all([api("GET", "/api/agents"), api("GET", "/api/agent-teams"), api("GET", "/api/channels")]);
    agents = agentList.data || agentList;
    channels = channelList.data || channelList;
    const teams = teamList.data || teamList;
    const name = (id) => agents.find((a) => a.id === id)?.name || "—";
    mount(
      agentsBox,
      agents.length
        ? h("div", { class: "table-wrap" }, h("table", { class: "table" },
            h("caption", { class: "sr-only" }, "AI agents"),
            h("thead", {}, h("tr", {}, ["Name", "Model", "Channels", "Trigger", "Status", ""].map((c) => h("th", { scope: "col" }, c)))),
            h("tbody", {}, agents.map((agent) => h("tr", { dataset: { agentId: agent.id } },
              h("td", {}, agent.name),
              h("td", {}, agent.model, agent.hasApiKey ? h("small", {}, " (own key)") : ""),
              h("td", {}, agent.channelInstanceIds.length ? agent.channelInstanceIds.map((id) => channels.find((c) => c.id === id)?.name || id).join(", ") : "all"),
              h("td", {}, agent.trigger.type === "ALL" ? "every message" : `${agent.trigger.matchMode.toLowerCase()}: ${agent.trigger.keywords.join(", ")}`),
              h("td", {}, badge(agent.active ? "ACTIVE" : "PAUSED", agent.active ? "active" : "paused")),
              h("td", {}, canManage ? h("button", { type: "button", class: "secondary small", onclick: () => agentForm(agent) }, "Edit") : ""),
            ))),
          ))
        : h("p", { class: "empty" }, "No agents yet. Without one, customers wait for a human."),
    );
    mount(
      teamsBox,
      teams.length
        ? h("div", { class: "table-wrap" }, h("table", { class: "table" },
            h("caption", { class: "sr-only" }, "Agent teams"),
            h("thead", {}, h("tr", {}, ["Team", "Router", "Members", "Status", ""].map((c) => h("th", { scope: "col" }, c)))),
            h("tbody", {}, teams.map((team) => h("tr", {},
              h("td", {}, team.name),
              h("td", {}, name(team.routerAgentId)),
              h("td", {}, team.members.map((m) => name(m.agentId)).join(", ") || "—"),
              h("td", {}, badge(team.active ? "ACTIVE" : "PAUSED", team.active ? "active" : "paused")),
              h("td", {}, canManage ? h("button", { type: "button", class: "secondary small", onclick: () => teamForm(team) }, "Edit") : ""),
            ))),
          ))
        : h("p", { class: "empty" }, "No teams. A team's router agent hands each turn to the member that fits it."),
    );
  }

  function closeEditor() {
    mount(editor);
  }

  /** Deletes what `path` names after a confirmation, then closes the editor and reloads. */
  function deleteButton(what, path) {
    return h("button", {
      type: "button",
      class: "danger",
      onclick: async () => {
        if (!(await confirmDialog(`Delete ${what}?`, "Delete"))) return;
        try {
          await api("DELETE", path);
          closeEditor();
          await load();
        } catch (error) {
          toast(error.message, "error");
        }
      },
    }, "Delete");
  }

  function agentForm(agent) {
    const errors = errorBox();
    const a = agent || { active: true, model: "gpt-4o-mini", trigger: { type: "ALL", keywords: [], matchMode: "CONTAINS" }, channelInstanceIds: [], tools: ["handoff_to_human"], httpTools: [], debounceMs: 0, cooldownSeconds: 30, humanPauseMinutes: 30, historyMessages: 20, maxTokens: 1024 };
    const num = (name, label, value, hint, step = 1) => field(label, h("input", { name, type: "number", min: 0, step, value: value ?? "" }), hint);
    const triggerType = select({ name: "triggerType" }, [["ALL", "Every customer message"], ["KEYWORD", "Messages with keywords"]], a.trigger.type);
    const keywords = h("div", { hidden: a.trigger.type !== "KEYWORD" },
      h("div", { class: "row" },
        field("Keywords", h("input", { name: "keywords", value: a.trigger.keywords.join(", ") }), "Comma-separated, case-insensitive."),
        field("Match", select({ name: "matchMode" }, MATCH_MODES, a.trigger.matchMode)),
      ));
    triggerType.addEventListener("change", () => (keywords.hidden = triggerType.value !== "KEYWORD"));
    const form = h(
      "form",
      { class: "card", "aria-labelledby": "agent-form-title" },
      h("h2", { id: "agent-form-title", tabindex: "-1" }, agent ? `Edit ${agent.name}` : "New agent"),
      errors.el,
      h("div", { class: "row" },
        field("Name", h("input", { name: "name", required: true, value: a.name || "", autocomplete: "off" })),
        field("Model", h("input", { name: "model", required: true, value: a.model || "", autocomplete: "off" }), "gpt-4o-mini, or what your server knows (llama3.1)"),
      ),
      checkbox("Active", { name: "active", checked: a.active }),
      field("System prompt", h("textarea", { name: "systemPrompt", rows: 4, value: a.systemPrompt || "", required: Boolean(agent) }), agent ? undefined : "Left empty: a short support persona."),
      h("div", { class: "row" },
        field("Server base URL", h("input", { name: "baseUrl", type: "url", value: a.baseUrl || "", placeholder: "default: OPENAI_BASE_URL" })),
        field("API key", h("input", { name: "apiKey", type: "password", autocomplete: "new-password", placeholder: a.hasApiKey ? "Stored: leave empty to keep it" : "default: OPENAI_API_KEY" })),
      ),
      a.hasApiKey ? checkbox("Remove the stored API key", { name: "removeApiKey" }) : "",
      h("fieldset", {}, h("legend", {}, "Channels (none checked: every channel)"),
        channels.map((c) => checkbox(`${c.name} (${c.type})`, { name: "channelInstanceIds[]", value: c.id, checked: a.channelInstanceIds.includes(c.id) }))),
      h("fieldset", {}, h("legend", {}, "When it answers"), field("Trigger", triggerType), keywords, checkbox("Stay out of group chats", { name: "ignoreGroups", checked: a.ignoreGroups })),
      h("div", { class: "row" },
        num("temperature", "Temperature", a.temperature, "empty: the model's default", "any"),
        num("maxTokens", "Max tokens", a.maxTokens),
        num("debounceMs", "Debounce (ms)", a.debounceMs, "wait for the customer's burst"),
        num("cooldownSeconds", "Cooldown (s)", a.cooldownSeconds),
        num("humanPauseMinutes", "Human pause (min)", a.humanPauseMinutes),
        num("historyMessages", "History messages", a.historyMessages),
      ),
      h("fieldset", {}, h("legend", {}, "Tools"), TOOLS.map(([value, label]) => checkbox(label, { name: "tools[]", value, checked: a.tools.includes(value) }))),
      field("HTTP tools (JSON)", h("textarea", { name: "httpTools", rows: 3, class: "mono", value: JSON.stringify((a.httpTools || []).map(({ secretHeader, ...rest }) => (secretHeader ? { ...rest, secretHeader: { name: secretHeader.name } } : rest)), null, 1) }), "[{name, description, parameters, url, method, secretHeader?: {name, value}}]; a secret header's value is write-only: leave it out to keep it."),
      h("div", { class: "actions" },
        h("button", { type: "submit", class: "primary" }, agent ? "Save agent" : "Create agent"),
        h("button", { type: "button", class: "secondary", onclick: closeEditor }, "Cancel"),
        agent ? deleteButton(`the agent ${agent.name}`, `/api/agents/${agent.id}`) : "",
      ),
    );
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      errors.clear();
      const f = form.elements;
      const number = (name) => (f[name].value === "" ? null : Number(f[name].value));
      try {
        const body = {
          name: f.name.value.trim(),
          active: f.active.checked,
          model: f.model.value.trim(),
          // Left empty, a new agent gets the default prompt (and an agent keeps its own).
          ...(f.systemPrompt.value.trim() ? { systemPrompt: f.systemPrompt.value } : {}),
          baseUrl: f.baseUrl.value.trim() || null,
          channelInstanceIds: [...form.querySelectorAll('[name="channelInstanceIds[]"]:checked')].map((c) => c.value),
          trigger: f.triggerType.value === "ALL"
            ? { type: "ALL" }
            : { type: "KEYWORD", keywords: f.keywords.value.split(",").map((k) => k.trim()).filter(Boolean), matchMode: f.matchMode.value },
          ignoreGroups: f.ignoreGroups.checked,
          temperature: number("temperature"),
          maxTokens: number("maxTokens"),
          tools: [...form.querySelectorAll('[name="tools[]"]:checked')].map((c) => c.value),
          httpTools: JSON.parse(f.httpTools.value.trim() || "[]"),
        };
        for (const key of ["debounceMs", "cooldownSeconds", "humanPauseMinutes", "historyMessages"]) if (f[key].value !== "") body[key] = Number(f[key].value);
        if (f.apiKey.value) body.apiKey = f.apiKey.value;
        else if (f.removeApiKey?.checked) body.apiKey = null;
        await busy(form, () => (agent ? api("PATCH", `/api/agents/${agent.id}`, body) : api("POST", "/api/agents", body)));
        toast(agent ? "Agent saved" : "Agent created");
        closeEditor();
        await load();
      } catch (error) {
        errors.show(error instanceof SyntaxError ? new Error(`HTTP tools: ${error.message}`) : error);
      }
    });
    mount(editor, form);
    form.querySelector("h2").focus();
  }

  function teamForm(team) {
    const errors = errorBox();
    const t = team || { active: true, members: [] };
    const memberOf = (id) => t.members.find((m) => m.agentId === id);
    const form = h(
      "form",
      { class: "card", "aria-labelledby": "team-form-title" },
      h("h2", { id: "team-form-title", tabindex: "-1" }, team ? `Edit ${team.name}` : "New team"),
      errors.el,
      field("Name", h("input", { name: "name", required: true, value: t.name || "", autocomplete: "off" })),
      field("Description", h("input", { name: "description", value: t.description || "", autocomplete: "off" })),
      checkbox("Active", { name: "active", checked: t.active }),
      field("Router agent", select({ name: "routerAgentId", required: true }, [["", "Choose…"], ...agents.map((a) => [a.id, a.name])], t.routerAgentId || ""), "It reads each turn and hands it to a member."),
      h("fieldset", {}, h("legend", {}, "Members"),
        agents.map((a) => h("div", { class: "row member" },
          checkbox(a.name, { name: "members[]", value: a.id, checked: Boolean(memberOf(a.id)) }),
          field(`What ${a.name} handles`, h("input", { name: `member.${a.id}`, value: memberOf(a.id)?.description || "", autocomplete: "off" })),
        ))),
      h("div", { class: "actions" },
        h("button", { type: "submit", class: "primary" }, team ? "Save team" : "Create team"),
        h("button", { type: "button", class: "secondary", onclick: closeEditor }, "Cancel"),
        team ? deleteButton(`the team ${team.name}`, `/api/agent-teams/${team.id}`) : "",
      ),
    );
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      errors.clear();
      const f = form.elements;
      // The router routes; it is not one of the members it routes to.
      const members = [...form.querySelectorAll('[name="members[]"]:checked')].filter((c) => c.value !== f.routerAgentId.value).map((c) => {
        const description = f[`member.${c.value}`].value.trim();
        return description ? { agentId: c.value, description } : { agentId: c.value };
      });
      const body = { name: f.name.value.trim(), description: f.description.value.trim() || null, active: f.active.checked, routerAgentId: f.routerAgentId.value, members };
      try {
        await busy(form, () => (team ? api("PATCH", `/api/agent-teams/${team.id}`, body) : api("POST", "/api/agent-teams", body)));
        toast(team ? "Team saved" : "Team created");
        closeEditor();
        await load();
      } catch (error) {
        errors.show(error);
      }
    });
    mount(editor, form);
    form.querySelector("h2").focus();
  }

  mount(
    main,
    pageHeader("Agents",
      canManage ? h("button", { type: "button", class: "primary", onclick: () => agentForm(null) }, "New agent") : "",
      canManage ? h("button", { type: "button", class: "secondary", onclick: () => teamForm(null) }, "New team") : "",
    ),
    editor,
    h("h2", {}, "AI agents"),
    agentsBox,
    h("h2", { class: "spaced" }, "Teams"),
    teamsBox,
  );
  await load();
}
