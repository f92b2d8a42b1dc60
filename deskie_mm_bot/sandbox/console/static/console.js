// The sandbox console: a person plays Mattermost users (left) and Deskie agents (right).
// Everything shown comes from the emulators' control APIs (/mm/_emu/..., /dk/_emu/...) and the bot's
// public /healthz and /metrics (/bot/...); the console server only forwards those paths.
// Live: each pane long-polls its emulator's /_emu/changes and re-reads its state when it moves.
"use strict";

const $ = (id) => document.getElementById(id);
const S = {
  cfg: null,
  mm: { users: [], channels: [], teams: [] },
  dk: { cases: [], staff: [], groups: [] },
  users: new Map(),        // Mattermost user id -> user
  me: "",                  // the person played now
  convOf: {},              // person -> the conversation they look at
  posts: [],
  seen: {},                // "person|channel" -> last_post_at seen
  replyTo: "",             // root post id of the thread being answered
  editing: "",             // post id being edited
  caseId: null,
  caseSeen: {},            // case id -> messages seen
  outgoing: false,
  plan: null,
};

// ------------------------------------------------------------------ plumbing
async function call(url, body) {
  const init = body === undefined ? {} : {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  };
  const r = await fetch(url, init);
  const text = await r.text();
  let data = text;
  try { data = JSON.parse(text); } catch (e) { /* not JSON: keep the text */ }
  if (!r.ok) {
    const why = (data && (data.message || data.error)) || text || r.statusText;
    throw new Error(`${r.status}: ${why}`);
  }
  return data;
}
const mm = (path, body) => call(`/mm/_emu/${path}`, body);
const dk = (path, body) => call(`/dk/_emu/${path}`, body);
const sleep = (ms) => new Promise((res) => setTimeout(res, ms));

let toastTimer = 0;
function toast(text, error) {
  const t = $("toast");
  t.textContent = text;
  t.className = "show" + (error ? " error" : "");
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { t.className = ""; }, error ? 6000 : 2500);
}
function failed(what) { return (e) => toast(`${what}: ${e.message}`, true); }

// One run at a time; calls made meanwhile coalesce into one more run.
function serial(fn) {
  let running = null, again = false;
  return function run() {
    if (running) { again = true; return running; }
    running = (async () => {
      do { again = false; try { await fn(); } catch (e) { toast(e.message, true); } } while (again);
      running = null;
    })();
    return running;
  };
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
const clock = (ms) => new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
const fileSize = (n) => n >= 1048576 ? `${(n / 1048576).toFixed(1)} MB` : n >= 1024 ? `${Math.round(n / 1024)} KB` : `${n} B`;
function readBase64(file) {
  return new Promise((res, rej) => {
    const r = new FileReader();
    r.onload = () => res(String(r.result).split(",", 2)[1] || "");
    r.onerror = () => rej(r.error);
    r.readAsDataURL(file);
  });
}
function keepBottom(box, render) {
  const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 40;
  render();
  if (atBottom) box.scrollTop = box.scrollHeight;
}

// ------------------------------------------------------------------ Markdown (Mattermost posts)
function inline(s) {
  const codes = [];
  s = esc(s).replace(/`([^`]+)`/g, (_, c) => { codes.push(`<code>${c}</code>`); return `\u0001${codes.length - 1}\u0001`; });
  s = s.replace(/\[([^\]]+)\]\(((?:https?:|mailto:)[^)\s]+)\)/g, '<a href="$2" target="_blank" rel="noopener">$1</a>')
    .replace(/(^|[\s(])((?:https?):\/\/[^\s<)]+)/g, '$1<a href="$2" target="_blank" rel="noopener">$2</a>')
    .replace(/\*\*([^*]+)\*\*/g, "<strong>$1</strong>").replace(/__([^_]+)__/g, "<strong>$1</strong>")
    .replace(/(^|[^*\w])\*([^*\s][^*]*)\*/g, "$1<em>$2</em>").replace(/(^|[^_\w])_([^_\s][^_]*)_(?!\w)/g, "$1<em>$2</em>")
    .replace(/~~([^~]+)~~/g, "<s>$1</s>");
  return s.replace(/\u0001(\d+)\u0001/g, (_, i) => codes[+i]);
}
const GAP = '<div class="gap"></div>';  // a blank line: paragraph spacing, not an empty line
function markdown(text) {
  const out = [];
  let list = null;
  const close = () => { if (list) { out.push(`</${list}>`); list = null; } };
  const lines = String(text).split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (/^```/.test(line)) {
      close();
      const code = [];
      for (i++; i < lines.length && !/^```/.test(lines[i]); i++) code.push(lines[i]);
      out.push(`<pre><code>${esc(code.join("\n"))}</code></pre>`);
      continue;
    }
    let m;
    if ((m = /^\s*[-*+]\s+(.*)$/.exec(line))) {
      if (list !== "ul") { close(); out.push("<ul>"); list = "ul"; }
      out.push(`<li>${inline(m[1])}</li>`);
    } else if ((m = /^\s*\d+[.)]\s+(.*)$/.exec(line))) {
      if (list !== "ol") { close(); out.push("<ol>"); list = "ol"; }
      out.push(`<li>${inline(m[1])}</li>`);
    } else if ((m = /^>\s?(.*)$/.exec(line))) {
      close(); out.push(`<blockquote>${inline(m[1])}</blockquote>`);
    } else if ((m = /^#{1,6}\s+(.*)$/.exec(line))) {
      close(); out.push(`<p><strong>${inline(m[1])}</strong></p>`);
    } else if (line.trim() === "") {
      close(); if (out.length) out.push(GAP);
    } else {
      close(); out.push(`<p>${inline(line)}</p>`);
    }
  }
  close();
  while (out.length && out[out.length - 1] === GAP) out.pop();
  const div = el("div", { class: "text" });
  div.innerHTML = out.join("");
  return div;
}

// ------------------------------------------------------------------ HTML (Deskie messages), whitelisted
const SAFE_TAGS = new Set(["P", "BR", "B", "STRONG", "I", "EM", "U", "S", "A", "UL", "OL", "LI", "CODE", "PRE",
  "BLOCKQUOTE", "SPAN", "DIV", "H1", "H2", "H3", "H4", "H5", "H6", "HR", "SUB", "SUP"]);
const DROPPED = new Set(["SCRIPT", "STYLE", "IFRAME", "OBJECT", "EMBED", "TEMPLATE", "HEAD", "TITLE"]);
function copySafe(src, dst) {
  for (const n of src.childNodes) {
    if (n.nodeType === Node.TEXT_NODE) dst.append(n.textContent);
    else if (n.nodeType === Node.ELEMENT_NODE && !DROPPED.has(n.tagName)) {
      if (!SAFE_TAGS.has(n.tagName)) { copySafe(n, dst); continue; }
      const e = document.createElement(n.tagName);
      if (n.tagName === "A" && /^(https?:|mailto:)/i.test(n.getAttribute("href") || "")) {
        e.href = n.getAttribute("href"); e.target = "_blank"; e.rel = "noopener";
      }
      copySafe(n, e);
      dst.append(e);
    }
  }
}
function safeHtml(html) {
  // DOMParser's document is inert: nothing in it runs or loads.
  const doc = new DOMParser().parseFromString(String(html), "text/html");
  const div = el("div", { class: "body" });
  copySafe(doc.body, div);
  return div;
}

// ------------------------------------------------------------------ Mattermost pane
const bot = () => S.users.get(S.cfg.bot.user_id) || { id: S.cfg.bot.user_id, username: S.cfg.bot.username };
const people = () => S.mm.users.filter((u) => !u.is_bot && !u.delete_at);
const nameOf = (u) => u ? ([u.first_name, u.last_name].filter(Boolean).join(" ") || `@${u.username}`) : "someone";
const isMember = (c, uid) => c.members.includes(uid);
const dmWithBot = (uid) => S.mm.channels.find((c) => c.type === "D" && isMember(c, uid) && isMember(c, bot().id) && c.members.length === 2);

function convLabel(c) {
  if (c.type === "D") {
    const other = c.members.find((m) => m !== S.me) || S.me;
    const u = S.users.get(other);
    return u && u.is_bot ? `@${u.username} (bot)` : `@${u ? u.username : "?"}`;
  }
  if (c.type === "G") return c.display_name;
  return `~${c.name}`;
}

function conversationsOf(uid) {
  const mine = S.mm.channels.filter((c) => isMember(c, uid) && !c.delete_at);
  const dms = mine.filter((c) => c.type === "D" && c !== dmWithBot(uid));
  return {
    channels: mine.filter((c) => c.type === "O" || c.type === "P").sort((a, b) => a.name.localeCompare(b.name)),
    groups: mine.filter((c) => c.type === "G"),
    dms,
  };
}

function renderPeople() {
  const sel = $("me");
  const list = people();
  if (!S.me && list.length) S.me = list[0].id;
  sel.replaceChildren(...list.map((u) => el("option", { value: u.id, selected: u.id === S.me }, `${nameOf(u)} (@${u.username})`)));
}

function renderConvs() {
  const nav = $("convs");
  const { channels, groups, dms } = conversationsOf(S.me);
  const item = (id, label, c) => {
    const unread = c && c.last_post_at > (S.seen[`${S.me}|${c.id}`] || 0) && id !== S.convOf[S.me];
    return el("button", {
      type: "button", class: `item${id === S.convOf[S.me] ? " sel" : ""}${unread ? " unread" : ""}`,
      "data-conv": id, onclick: () => openConv(id),
    }, label);
  };
  const botDm = dmWithBot(S.me);
  nav.replaceChildren(...[
    el("div", { class: "section" }, "Help desk"),
    item(botDm ? botDm.id : "dm-bot", `@${bot().username} (bot)`, botDm),
    el("div", { class: "section" }, "Channels"),
    channels.length ? channels.map((c) => item(c.id, convLabel(c), c)) : el("div", { class: "empty" }, "none"),
    groups.length ? [el("div", { class: "section" }, "Group messages"), groups.map((c) => item(c.id, convLabel(c), c))] : null,
    dms.length ? [el("div", { class: "section" }, "Direct messages"), dms.map((c) => item(c.id, convLabel(c), c))] : null,
  ].flat(2).filter(Boolean));
}

async function addPerson() {
  const name = (prompt("Username of the new person (letters, digits, . _ -)", "") || "").trim().toLowerCase();
  if (!name) return;
  if (!/^[a-z][a-z0-9._-]{0,21}$/.test(name)) { toast("A username starts with a letter: letters, digits, . _ -", true); return; }
  try {
    const user = await mm("users", { username: name, first_name: name[0].toUpperCase() + name.slice(1), last_name: "" });
    for (const t of S.mm.teams) await mm("team_members", { team_id: t.id, user_id: user.id });
    for (const c of S.mm.channels.filter((c) => c.type === "O" && !c.delete_at)) await mm("channel_members", { channel_id: c.id, user_id: user.id });
    S.me = user.id;
    await refreshMM();
    toast(`You are now @${name}`);
  } catch (e) { toast(`Could not add @${name}: ${e.message}`, true); }
}

async function openConv(id) {
  if (id === "dm-bot") {
    try {
      const c = await mm("direct", { user_ids: [S.me, bot().id] });
      id = c.id;
      await refreshMM();
    } catch (e) { toast(`Could not open the direct message: ${e.message}`, true); return; }
  }
  S.convOf[S.me] = id;
  S.replyTo = ""; S.editing = "";
  renderComposerContext();
  renderConvs();
  await loadPosts();
  const box = $("posts"); box.scrollTop = box.scrollHeight;
  $("mm-text").focus();
}

function currentConv() { return S.mm.channels.find((c) => c.id === S.convOf[S.me]); }

function renderConvHead() {
  const c = currentConv();
  const head = $("conv-head");
  if (!c) {
    head.replaceChildren(el("h2", {}, "Pick a conversation"), el("div", { class: "hint" }, `Start with @${bot().username}: write to the help desk in a direct message.`));
    return;
  }
  let hint;
  const b = bot();
  if (!isMember(c, b.id)) hint = `@${b.username} is not in this conversation: nothing here reaches the help desk.`;
  else if (c.type === "D") hint = "A direct message with the bot: everything written here goes to the help desk.";
  else if (S.cfg.bot.mention_only) hint = `The bot hears posts that mention @${b.username} (and replies in a thread that is already a chat).`;
  else hint = "The bot relays every post in this channel.";
  if (S.cfg.bot.reply_mode === "thread") hint += " Reply mode: thread — each top-level post is its own chat; answer in its thread.";
  head.replaceChildren(el("h2", {}, convLabel(c)), el("div", { class: "hint" }, hint));
}

async function loadPosts() {
  const c = currentConv();
  S.posts = c ? await mm(`posts/${c.id}?include_deleted=true`) : [];
  if (c) S.seen[`${S.me}|${c.id}`] = c.last_post_at;
  renderConvHead();
  keepBottom($("posts"), renderPosts);
}

function renderPost(p, isRoot) {
  const author = S.users.get(p.user_id);
  const mine = p.user_id === S.me;
  const deleted = !!p.delete_at;
  const files = (p.metadata && p.metadata.files) || [];
  const ops = [];
  if (!deleted && isRoot) ops.push(el("button", { type: "button", title: "Reply in a thread", onclick: () => startReply(p) }, "Reply"));
  if (!deleted && mine) {
    ops.push(el("button", { type: "button", onclick: () => startEdit(p) }, "Edit"));
    ops.push(el("button", { type: "button", onclick: () => mm("delete_post", { post_id: p.id }).catch(failed("Delete")) }, "Delete"));
  }
  return el("div", { class: `post${deleted ? " deleted" : ""}${author && author.is_bot ? " bot" : ""}`, "data-post": p.id },
    el("div", {},
      el("span", { class: "who" }, author ? nameOf(author) : p.user_id),
      author && author.is_bot ? el("span", { class: "tag" }, "BOT") : null,
      el("span", { class: "when" }, clock(p.create_at)),
      p.edit_at && !deleted ? el("span", { class: "edited" }, "(edited)") : null),
    deleted ? el("div", { class: "text" }, "(message deleted)") : markdown(p.message),
    !deleted && files.length ? el("div", { class: "files" }, files.map((f) => el("a", { href: `/mm/_emu/files/${f.id}`, target: "_blank", title: f.name },
      f.mime_type && f.mime_type.startsWith("image/") ? el("img", { src: `/mm/_emu/files/${f.id}`, alt: f.name }) : `${f.name} (${fileSize(f.size)})`))) : null,
    ops.length ? el("div", { class: "ops" }, ops) : null);
}

function renderPosts() {
  const box = $("posts");
  const c = currentConv();
  if (!c) { box.replaceChildren(el("div", { class: "placeholder" }, "← pick a conversation")); return; }
  const posts = S.posts.filter((p) => !p.original_id);  // not the history copies of edited posts
  if (!posts.length) {
    box.replaceChildren(el("div", { class: "placeholder" }, "No messages yet.", el("br"),
      c.type === "D" ? "Say hello: the bot opens a case in Deskie." : `Try “@${bot().username} I need help”.`));
    return;
  }
  const replies = new Map();
  for (const p of posts) if (p.root_id) replies.set(p.root_id, [...(replies.get(p.root_id) || []), p]);
  const known = new Set(posts.map((p) => p.id));
  box.replaceChildren(...posts.filter((p) => !p.root_id || !known.has(p.root_id)).map((root) => {
    const thread = replies.get(root.id) || [];
    return el("div", { class: "thread" }, renderPost(root, !root.root_id),
      thread.length ? el("div", { class: "replies" }, thread.map((r) => renderPost(r, false))) : null);
  }));
}

function startReply(p) {
  S.replyTo = p.id; S.editing = "";
  renderComposerContext(`Replying in the thread of “${p.message.slice(0, 60)}”`);
  $("mm-text").focus();
}
function startEdit(p) {
  S.editing = p.id; S.replyTo = "";
  $("mm-text").value = p.message;
  renderComposerContext("Editing your message");
  $("mm-text").focus();
}
function renderComposerContext(text) {
  $("mm-context").hidden = !text;
  $("mm-context-text").textContent = text || "";
  $("mm-send").textContent = S.editing ? "Save" : "Send";
}

async function sendPost(ev) {
  ev.preventDefault();
  const input = $("mm-text");
  const text = input.value.trim();
  const files = [...$("mm-files").files];
  try {
    if (S.editing) {
      if (!text) return;
      await mm("edit_post", { post_id: S.editing, message: text });
    } else {
      let c = currentConv();
      if (!c) { toast("Pick a conversation first", true); return; }
      if (!text && !files.length) return;
      if (files.length > 5) { toast("Mattermost takes at most 5 files a post", true); return; }
      const ids = [];
      for (const f of files) {
        const info = await mm("upload", { user_id: S.me, channel_id: c.id, name: f.name, mime_type: f.type || undefined, data_base64: await readBase64(f) });
        ids.push(info.id);
      }
      await mm("post_as", { user_id: S.me, channel_id: c.id, message: text, root_id: S.replyTo, file_ids: ids });
    }
    input.value = ""; $("mm-files").value = ""; $("mm-filenames").textContent = "";
    S.editing = ""; S.replyTo = "";
    renderComposerContext();
  } catch (e) { toast(`Not sent: ${e.message}`, true); }
}

const refreshMM = serial(async () => {
  const snap = await mm("snapshot");
  S.mm = snap;
  S.users = new Map(snap.users.map((u) => [u.id, u]));
  renderPeople();
  if (!S.convOf[S.me]) {
    const dm = dmWithBot(S.me);
    if (dm) S.convOf[S.me] = dm.id;
  }
  renderConvs();
  await loadPosts();
  if (S.outgoing) renderOutgoingTargets();
});

// ------------------------------------------------------------------ Deskie pane
const staffName = (id) => { const s = S.dk.staff.find((x) => x.staff_id === id); return s ? s.staff_full_name : `agent ${id}`; };
const when = (rfc) => { const t = Date.parse(rfc); return isNaN(t) ? rfc : clock(t); };
const caseOf = (id) => S.dk.cases.find((c) => c.case_id === id);
const customerName = (c) => (c.user && c.user.user_full_name) || `user ${c.user_id}`;
const customerWrites = (c) => c.messages.filter((m) => m.user_id && !m.note).length;

function renderAgents() {
  const sel = $("agent");
  const current = sel.value;
  const agents = S.dk.staff.filter((s) => s.active);
  const preferred = agents.find((s) => s.staff_email !== S.cfg.deskie.bot_staff_email) || agents[0];
  sel.replaceChildren(...agents.map((s) => el("option", { value: s.staff_id }, s.staff_full_name + (s.staff_email === S.cfg.deskie.bot_staff_email ? " (API user)" : ""))));
  sel.value = current || (preferred ? String(preferred.staff_id) : "");
}

function sortedCases() {
  const t = (c) => Date.parse(c.updated_at) || 0;
  return [...S.dk.cases].sort((a, b) => (a.status === "closed") - (b.status === "closed") || t(b) - t(a) || b.case_id - a.case_id);
}

function renderCases() {
  const nav = $("cases");
  const cases = sortedCases();
  if (!cases.length) {
    nav.replaceChildren(el("div", { class: "empty" }, "No cases yet. A customer’s first message in Mattermost opens one."));
    return;
  }
  nav.replaceChildren(...cases.map((c) => {
    const unread = c.case_id !== S.caseId && customerWrites(c) > (S.caseSeen[c.case_id] ?? 0);
    return el("button", { type: "button", class: `item${c.case_id === S.caseId ? " sel" : ""}${unread ? " unread" : ""}`,
      "data-case": c.case_id, onclick: () => openCase(c.case_id) },
    el("div", { class: "case-line" }, el("span", { class: "subj" }, c.subject)),
    el("div", { class: "case-meta" }, customerName(c)),
    el("div", { class: "case-meta" }, el("span", { class: `badge st-${c.status}` }, c.status),
      c.chat_active ? el("span", { class: "badge live" }, "live") : null,
      `${c.messages.length} msg · ${when(c.updated_at)}`));
  }));
}

function openCase(id) {
  S.caseId = id;
  showOutgoing(false);
  renderCases();
  renderCase(true);
  $("dk-text").focus();
}

function renderCase(scroll) {
  const c = caseOf(S.caseId);
  const head = $("case-head"), box = $("messages");
  $("dk-compose").hidden = !c || S.outgoing;
  if (!c) {
    head.replaceChildren(el("h2", {}, "No case selected"), el("div", { class: "hint" }, "Cases appear here as customers write; pick one to answer."));
    box.replaceChildren(el("div", { class: "placeholder" }, "Nothing to show yet.", el("br"), "Write to the bot on the left: the case opens here."));
    return;
  }
  S.caseSeen[c.case_id] = customerWrites(c);
  const group = S.dk.groups.find((g) => g.group_id === c.group_id);
  const closed = c.status === "closed";
  head.replaceChildren(
    el("div", { class: "head-main" },
      el("h2", {}, c.subject, el("span", { class: `badge st-${c.status}` }, c.status),
        el("span", { class: `badge ${c.chat_active ? "live" : "ended"}` }, c.chat_active ? "live chat" : "chat ended")),
      el("div", { class: "hint" }, `#${c.case_number} · ${customerName(c)} · group ${group ? group.group_title : c.group_id}`)),
    el("div", { class: "actions" },
      el("button", { type: "button", id: "end-chat", disabled: !c.chat_active, title: "End the live chat (the case keeps its status)",
        onclick: () => dk("end_chat", { case_id: c.case_id }).then(() => toast("Chat ended")).catch(failed("End chat")) }, "End chat"),
      closed
        ? el("button", { type: "button", id: "reopen", onclick: () => dk("set_status", { case_id: c.case_id, status: "open" }).catch(failed("Reopen")) }, "Reopen")
        : el("button", { type: "button", id: "close-case", onclick: () => dk("close_case", { case_id: c.case_id }).then(() => toast("Case closed")).catch(failed("Close")) }, "Close case")));
  const render = () => box.replaceChildren(...c.messages.map((m) => {
    const kind = m.note ? "note" : m.user_id ? "customer" : "agent";
    const who = kind === "customer" ? customerName(c) : staffName(m.staff_id);
    const label = kind === "note" ? "internal note · " : "";
    const body = m.content_html ? safeHtml(m.content_html) : el("div", { class: "body" }, m.content);
    return el("div", { class: `msg ${kind}`, "data-message": m.message_id },
      el("div", { class: "meta" }, label, el("b", {}, who), ` · ${when(m.created_at)}`),
      body,
      m.attachments && m.attachments.length ? el("div", { class: "files" }, m.attachments.map((a) =>
        el("a", { href: a.url, target: "_blank" }, `${a.file_name}${a.file_size ? ` (${fileSize(a.file_size)})` : ""}`))) : null);
  }));
  if (scroll) { render(); box.scrollTop = box.scrollHeight; } else keepBottom(box, render);
}

let editorRange = null;  // where the agent's caret was: a toolbar click must not move it
function keepRange() {
  const sel = window.getSelection();
  if (sel && sel.rangeCount && $("dk-text").contains(sel.anchorNode)) editorRange = sel.getRangeAt(0).cloneRange();
}
function caretToEndOfBlock(editor) {
  const sel = window.getSelection();
  const node = sel.anchorNode;
  const start = node && (node.nodeType === Node.ELEMENT_NODE ? node : node.parentElement);
  const block = start && start.closest("li, p, div");
  if (!block || block === editor || !editor.contains(block)) return;
  const range = document.createRange();
  range.selectNodeContents(block);
  range.collapse(false);
  sel.removeAllRanges();
  sel.addRange(range);
}
function format(cmd) {
  const editor = $("dk-text");
  if (document.activeElement !== editor) editor.focus();
  if (editorRange) { const sel = window.getSelection(); sel.removeAllRanges(); sel.addRange(editorRange); }
  if (cmd === "link") {
    const url = prompt("Link address", "https://");
    if (url && /^(https?:|mailto:)/i.test(url)) {
      const sel = window.getSelection();
      if (sel && !sel.isCollapsed) document.execCommand("createLink", false, url);
      else document.execCommand("insertHTML", false, `<a href="${esc(url)}">${esc(url)}</a>`);
    }
  } else if (cmd === "code") {
    const sel = window.getSelection();
    const text = sel ? sel.toString() : "";
    document.execCommand("insertHTML", false, `<code>${esc(text || "code")}</code>&nbsp;`);
  } else {
    const sel = window.getSelection();
    const caret = sel && sel.isCollapsed;
    document.execCommand(cmd, false, null);
    if (caret && cmd === "insertUnorderedList") caretToEndOfBlock(editor);  // Chromium leaves it at the start
  }
  keepRange();
}

async function sendAnswer(ev) {
  ev.preventDefault();
  const c = caseOf(S.caseId);
  if (!c) return;
  const editor = $("dk-text");
  const text = editor.innerText.trim();
  const files = [...$("dk-files").files];
  if (!text && !files.length) return;
  try {
    const attachments = [];
    for (const f of files) attachments.push({ file_name: f.name, mime_type: f.type || "application/octet-stream", data_base64: await readBase64(f) });
    const note = $("dk-note").checked;
    const fragment = safeHtml(editor.innerHTML);  // what the agent's editor made, whitelisted
    await dk("agent_reply", { case_id: c.case_id, html: text ? fragment.innerHTML : undefined,
      note, staff_id: Number($("agent").value) || undefined, attachments: attachments.length ? attachments : undefined });
    editor.innerHTML = ""; $("dk-files").value = ""; $("dk-filenames").textContent = ""; $("dk-note").checked = false;
    toast(note ? "Note added (agents only)" : "Answer sent: the bot posts it in Mattermost");
  } catch (e) { toast(`Not sent: ${e.message}`, true); }
}

function outgoingTargets() {
  const out = [];
  const fmt = S.cfg.outgoing;
  const b = bot();
  for (const u of people()) out.push({ label: `@${u.username} — ${nameOf(u)} (member)`, custom_id: fmt.member.replace("{id}", u.id), name: `${nameOf(u)} (@${u.username})` });
  for (const c of S.mm.channels) {
    if ((c.type === "O" || c.type === "P") && isMember(c, b.id) && !c.delete_at) {
      out.push({ label: `~${c.name} — ${c.display_name} (channel)`, custom_id: fmt.channel.replace("{id}", c.id), name: `${c.display_name} (~${c.name})` });
    }
  }
  return out;
}
function renderOutgoingTargets() {
  const sel = $("og-to");
  const current = sel.value;
  const targets = outgoingTargets();
  sel.replaceChildren(...targets.map((t) => el("option", { value: t.custom_id, "data-name": t.name }, t.label)));
  if (current) sel.value = current;
}
function showOutgoing(on) {
  S.outgoing = on;
  $("outgoing").hidden = !on;
  $("dk-compose").hidden = on || !caseOf(S.caseId);
  if (on) { renderOutgoingTargets(); $("og-text").focus(); }
}
async function startOutgoing(ev) {
  ev.preventDefault();
  const sel = $("og-to");
  const text = $("og-text").value.trim();
  if (!sel.value || !text) { toast("Pick who to write to, and write something", true); return; }
  try {
    const { case: c } = await dk("outgoing_case", {
      channel: S.cfg.deskie.channel, user_custom_id: sel.value, user_full_name: sel.selectedOptions[0].dataset.name,
      content: text, subject: $("og-subject").value.trim() || undefined, staff_id: Number($("agent").value) || undefined,
    });
    $("og-text").value = ""; $("og-subject").value = "";
    S.caseId = c.case_id;
    showOutgoing(false);
    await refreshDK();
    toast("Outgoing chat started: the bot posts it in Mattermost");
  } catch (e) { toast(`Not started: ${e.message}`, true); }
}

const refreshDK = serial(async () => {
  const snap = await dk("snapshot");
  S.dk = snap;
  renderAgents();
  if (S.caseId === null && snap.cases.length) S.caseId = sortedCases()[0].case_id;
  renderCases();
  renderCase(false);
  showStrip(snap.counters, snap.counters.outage_left);
});

// ------------------------------------------------------------------ the strip
function showStrip(counters, outageLeft) {
  if (counters) {
    S.plan = counters.rate_limit_per_minute;
    $("budget").innerHTML = `Deskie budget: <b>${counters.api_calls_left}</b> of ${counters.rate_limit_per_minute}/min left · 429s: <b>${counters.count_429}</b>`;
    const small = S.plan <= 20;
    $("f-plan").textContent = small ? `Back to ${S.cfg.deskie.plan_rpm} RPM` : "20 RPM plan";
    $("f-plan").classList.toggle("on", small);
  }
  if (outageLeft !== undefined) {
    $("faultstate").textContent = outageLeft > 0 ? `Deskie outage: ${Math.ceil(outageLeft)} s left` : "";
    $("f-outage").classList.toggle("on", outageLeft > 0);
  }
}

function metric(text, name) {
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})?\\s+([0-9.eE+-]+)`, "m").exec(text);
  return m ? Math.round(Number(m[1])) : "?";
}

const refreshStrip = serial(async () => {
  let health = null, healthy = false;
  try {
    const r = await fetch("/bot/healthz");
    healthy = r.ok;
    health = await r.json();
  } catch (e) { health = null; }
  if (!health || health.error) {
    $("health").innerHTML = `<span class="dot bad"></span>Bot: <b>not answering</b>`;
  } else {
    const ws = health.mattermost || {};
    const d = health.deskie || {};
    const dot = healthy ? "ok" : "bad";
    const dstate = d.state === "ok" ? "ok" : d.state === "rate_limited" ? "warn" : d.state === "unknown" ? "" : "bad";
    $("health").innerHTML = `<span class="dot ${dot}"></span>Bot: <b>${healthy ? "healthy" : "unhealthy"}</b> · websocket <b>${esc(ws.websocket || "?")}</b>`
      + `${ws.reconnects ? ` (${ws.reconnects} reconnects)` : ""} · Deskie <span class="dot ${dstate}"></span><b>${esc(d.state || "?")}</b>`;
    $("health").title = `The bot's /healthz: ${JSON.stringify(health)}`;
  }
  try {
    const text = await (await fetch("/bot/metrics")).text();
    $("queues").innerHTML = `Queues: to Deskie <b>${metric(text, "deskie_mm_outbox_pending")}</b> · to Mattermost <b>${metric(text, "deskie_mm_replies_pending")}</b> · live chats <b>${metric(text, "deskie_mm_open_chats")}</b>`;
  } catch (e) { $("queues").textContent = "Queues: ?"; }
  try {
    const counters = await dk("counters");
    showStrip(counters, counters.outage_left);
  } catch (e) { $("budget").textContent = "Deskie: not answering"; }
});

async function fault(what, fn) {
  try { await fn(); toast(what); } catch (e) { toast(`${what} failed: ${e.message}`, true); }
  refreshStrip();
}

// ------------------------------------------------------------------ live updates
async function follow(side, refresh) {
  let since = -1;
  for (;;) {
    try {
      const r = await call(`/${side}/_emu/changes?since=${since}&timeout=25`);
      if (r.version !== since) { since = r.version; await refresh(); }
    } catch (e) {
      toast(`${side === "mm" ? "Mattermost" : "Deskie"} emulator not answering (is the sandbox still running?)`, true);
      await sleep(3000);
    }
  }
}

// ------------------------------------------------------------------ start
async function main() {
  S.cfg = await call("/console/config.json");
  const mode = $("mm-mode");
  mode.textContent = `${S.cfg.bot.reply_mode === "thread" ? "thread replies" : "group chat"} · ${S.cfg.bot.mention_only ? "@mention only" : "all posts"}`;
  mode.title = `The bot's chat settings (sandbox --reply-mode, --all-posts): answers ${S.cfg.bot.reply_mode === "thread" ? "in the thread of each post" : "at the top level"}; in channels it relays ${S.cfg.bot.mention_only ? "only posts that mention it" : "every post"}`;
  $("me").addEventListener("change", async (e) => {
    S.me = e.target.value; S.replyTo = ""; S.editing = ""; renderComposerContext();
    if (!S.convOf[S.me]) { const dm = dmWithBot(S.me); if (dm) S.convOf[S.me] = dm.id; }
    renderConvs(); await loadPosts();
  });
  $("add-person").addEventListener("click", addPerson);
  $("mm-compose").addEventListener("submit", sendPost);
  $("mm-text").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); $("mm-compose").requestSubmit(); }
    if (e.key === "Escape") { S.replyTo = ""; S.editing = ""; renderComposerContext(); }
  });
  $("mm-context-cancel").addEventListener("click", () => { S.replyTo = ""; if (S.editing) $("mm-text").value = ""; S.editing = ""; renderComposerContext(); });
  $("mm-files").addEventListener("change", (e) => { $("mm-filenames").textContent = [...e.target.files].map((f) => f.name).join(", "); });
  $("dk-files").addEventListener("change", (e) => { $("dk-filenames").textContent = [...e.target.files].map((f) => f.name).join(", "); });
  $("dk-compose").addEventListener("submit", sendAnswer);
  document.addEventListener("selectionchange", keepRange);
  $("dk-text").addEventListener("keydown", (e) => { if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); $("dk-compose").requestSubmit(); } });
  for (const b of document.querySelectorAll(".toolbar [data-cmd]")) {
    b.addEventListener("mousedown", (e) => e.preventDefault());  // keep the editor's selection
    b.addEventListener("click", () => format(b.dataset.cmd));
  }
  $("new-outgoing").addEventListener("click", () => showOutgoing(!S.outgoing));
  $("og-cancel").addEventListener("click", () => showOutgoing(false));
  $("outgoing").addEventListener("submit", startOutgoing);
  $("f-drop").addEventListener("click", () => fault("Websocket dropped: the bot resumes", () => mm("drop", { resumable: true })));
  $("f-drop-lost").addEventListener("click", () => fault("Websocket dropped, events lost: the bot catches up", () => mm("drop", { resumable: false })));
  $("f-outage").addEventListener("click", () => fault("Deskie is down for 20 s", () => dk("faults", { kind: "5xx", seconds: 20 })));
  $("f-clear").addEventListener("click", () => fault("Deskie outage over", () => dk("faults", { kind: "clear" })));
  $("f-plan").addEventListener("click", () => {
    const rpm = S.plan !== null && S.plan <= 20 ? S.cfg.deskie.plan_rpm : 20;
    fault(`Deskie plan: ${rpm} requests a minute`, () => dk("rate_limit", { rate_limit_per_minute: rpm }));
  });
  renderConvHead(); renderPosts(); renderCase(false);
  follow("mm", refreshMM);
  follow("dk", refreshDK);
  refreshStrip();
  setInterval(refreshStrip, 3000);
}

main().catch((e) => toast(`The console could not start: ${e.message}`, true));
