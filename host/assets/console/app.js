// The console's shell: the session gate, the navigation and the hash router (`#/inbox/ID`).
// Pages are modules loaded when first visited; each `render(main, params)` returns a cleanup.

import { api, canManage, current, onSession, setUser, signOut } from "./api.js";
import * as live from "./live.js";
import { h, mount, toast } from "./ui.js";

const PAGES = {
  signin: () => import("./pages/auth.js"),
  signup: () => import("./pages/auth.js"),
  inbox: () => import("./pages/inbox.js"),
  channels: () => import("./pages/channels.js"),
  users: () => import("./pages/users.js"),
  agents: () => import("./pages/agents.js"),
  queue: () => import("./pages/queue.js"),
};
const PUBLIC = new Set(["signin", "signup"]);
const NAV = [
  ["inbox", "Inbox"],
  ["channels", "Channels"],
  ["users", "Users"],
  ["agents", "Agents"],
  ["queue", "Queue"],
];

const app = document.getElementById("app");
let cleanup = null;
let shell = null;
// The page shown, so a change of its parameters only (`#/inbox/A` -> `#/inbox/B`) goes to its
// `update(params)` when it has one, instead of building the page again.
let shown = null;
// The user the shell was built for (a sign-in as someone else in another tab rebuilds it).
let shellUser = null;
let liveDot = null;
live.onState((state) => {
  if (!liveDot) return;
  liveDot.dataset.state = state;
  liveDot.setAttribute("aria-label", `Live updates: ${state}`);
});
let generation = 0;

function parseRoute() {
  const parts = location.hash.replace(/^#\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
  const [page = "", ...params] = parts;
  return { page, params };
}

export function go(path) {
  if (location.hash !== `#${path}`) location.hash = path;
  else route();
}

function buildShell() {
  const session = current();
  const status = h("span", { class: "live-dot", role: "img", "aria-label": "Live updates: connecting", title: "Live updates" });
  liveDot = status;
  const state = document.documentElement.dataset.live;
  if (state) {
    status.dataset.state = state;
    status.setAttribute("aria-label", `Live updates: ${state}`);
  }
  const nav = h(
    "nav",
    { class: "nav", "aria-label": "Main" },
    h("ul", {}, NAV.map(([page, label]) => h("li", {}, h("a", { href: `#/${page}`, dataset: { page } }, label)))),
  );
  const main = h("main", { id: "main", tabindex: "-1" });
  const header = h(
    "header",
    { class: "topbar" },
    h("a", { class: "brand", href: "#/inbox" }, h("img", { src: "/console/icon.svg", alt: "", width: 24, height: 24 }), h("span", {}, "OmniChat")),
    h("span", { class: "tenant", title: "Workspace" }, session?.tenant?.name || ""),
    nav,
    h(
      "div",
      { class: "me" },
      status,
      h("span", { class: "who" }, session?.user?.name || session?.user?.email || "", h("small", {}, ` ${session?.user?.role || ""}`)),
      h("button", { type: "button", class: "secondary small", onclick: () => signOut() }, "Sign out"),
    ),
  );
  mount(app, header, main);
  return { main, nav };
}

async function route() {
  const gen = ++generation;
  const session = current();
  let { page, params } = parseRoute();
  if (!session && !PUBLIC.has(page)) {
    if (location.hash !== "#/signin" && location.hash !== "#/signup") location.replace("#/signin");
    page = location.hash === "#/signup" ? "signup" : "signin";
    params = [];
  }
  if (session && (PUBLIC.has(page) || !PAGES[page])) {
    location.replace("#/inbox");
    page = "inbox";
    params = [];
  }
  if (shown && shown.page === page && shown.module.update && shell && !PUBLIC.has(page)) {
    shown.module.update(params);
    return;
  }
  cleanup?.();
  cleanup = null;
  shown = null;
  let main;
  if (PUBLIC.has(page)) {
    shell = null;
    main = h("main", { id: "main", class: "auth-main", tabindex: "-1" });
    mount(app, main);
  } else {
    if (!shell) {
      shell = buildShell();
      shellUser = session.user?.id;
      live.connect();
    }
    main = shell.main;
    for (const link of shell.nav.querySelectorAll("a")) {
      if (link.dataset.page === page) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
  }
  app.removeAttribute("aria-busy");
  try {
    const module = await PAGES[page]();
    if (gen !== generation) return;
    mount(main);
    cleanup = (await module.render(main, { page, params, canManage: canManage(), go })) || null;
    if (gen !== generation) {
      cleanup?.();
      return;
    }
    shown = { page, module };
    const heading = main.querySelector("h1");
    document.title = heading ? `${heading.textContent} · OmniChat` : "OmniChat";
    (heading || main).focus({ preventScroll: true });
  } catch (error) {
    if (gen !== generation) return;
    console.error(error);
    mount(main, h("div", { class: "empty", role: "alert" }, `This page could not be shown: ${error.message}`));
  }
}

onSession((session) => {
  if (!session || (shell && session.user?.id !== shellUser)) {
    live.disconnect();
    cleanup?.();
    cleanup = null;
    shell = null;
    shown = null;
    route();
  }
});

// The skip link moves focus to the page, not through the hash router.
document.querySelector(".skip")?.addEventListener("click", (event) => {
  event.preventDefault();
  document.getElementById("main")?.focus();
});

window.addEventListener("hashchange", route);

// Signed in from an earlier visit: read the user again (its role may have changed).
if (current()) {
  api("GET", "/api/auth/me")
    .then((me) => {
      if (me?.user && JSON.stringify(me.user) !== JSON.stringify(current()?.user)) {
        setUser(me.user).then(() => {
          shell = null;
          shown = null;
          route();
        });
      }
    })
    .catch((error) => {
      if (error.status !== 401) toast(`Could not load your account: ${error.message}`, "error");
    });
}
route();
