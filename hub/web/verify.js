// The patient verify page: look an invoice up by its printed codes, then check in this
// browser, without trusting the hub's word, that it is anchored in the signed ledger.
import { CATEGORIES, TEXT, format } from "./i18n.js";
import {
  ProofError,
  b64decode,
  b64encode,
  bodyDigest,
  documentLeafData,
  equal,
  leafHash,
  openNote,
  parseCheckpoint,
  parseReceipt,
  parseVerifierKey,
  verifyConsistency,
  verifyInclusion,
} from "./proof.js";
import { renderClaims } from "./claims.js";
import { showWitnesses } from "./witnesses.js";
import { CHECK_RE, ID_RE, LOOKUP, TYPE_RE, fields, title } from "./fields.js";

const STEPS = ["digest", "leaf", "inclusion", "signature", "consistency"];
const CODES = { code: /^[0-9]{8}$/, number: /^[0-9]{10}$/, check: /^[0-9A-Za-z]{6}$/ };
const LANG_KEY = "ledgerhub.lang";
const QUERY = `query Invoice($c: String!, $n: String!, $k: String!) {
  invoice(billCode: $c, billNumber: $n, checkCode: $k) {
    id type issuer version status body salt digest leafIndex issuedAt
    inclusionProof { leafIndex treeSize leafHash leafData receipt }
    accessEvents { agency purpose at version leafIndex }
    claims { agency amount at status }
  }
}`;

const $ = (id) => document.getElementById(id);
let lang = localStorage.getItem(LANG_KEY) || (navigator.language.startsWith("zh") ? "zh" : "en");
let current = null; // {doc, result, vkey}: what is on screen, re-rendered on a language switch
const blobUrls = [];

const t = (key, values = {}) => format(TEXT[lang][key] ?? key, values);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "text") node.textContent = v;
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

// --- money: decimal strings, summed as integer cents (never floats) ---

function cents(text) {
  const m = /^(-?)([0-9]+)(?:\.([0-9]{1,2}))?$/.exec(String(text ?? "0"));
  if (!m) return 0n;
  const value = BigInt(m[2]) * 100n + BigInt((m[3] ?? "").padEnd(2, "0") || "0");
  return m[1] ? -value : value;
}

function money(c) {
  const sign = c < 0n ? "-" : "";
  const abs = c < 0n ? -c : c;
  return `${sign}¥${abs / 100n}.${String(abs % 100n).padStart(2, "0")}`;
}

// --- network: same origin only ---

async function graphql(query, variables) {
  const response = await fetch("/graphql", {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "application/json" },
    body: JSON.stringify({ query, variables }),
    credentials: "omit",
  });
  const payload = await response.json();
  return payload;
}

async function text(path) {
  const response = await fetch(path, { credentials: "omit", cache: "no-store" });
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return response.text();
}

// --- verification ---

class StepFailure extends Error {
  constructor(step, message) {
    super(message);
    this.step = step;
  }
}

async function step(name, states, fn) {
  try {
    const value = await fn();
    states[name] = "pass";
    return value;
  } catch (err) {
    states[name] = "fail";
    throw err instanceof StepFailure ? err : new StepFailure(name, err.message ?? String(err));
  }
}

const storeKey = (verifier) => `ledgerhub.checkpoint.${verifier.text}`;
const noteText = (note) => note.slice(0, note.lastIndexOf("\n\n") + 1);

async function verifyDocument(doc, vkeyText, latestNote) {
  const states = {};
  const proofInfo = doc.inclusionProof;
  let receipt;
  try {
    receipt = parseReceipt(proofInfo.receipt);
  } catch (err) {
    states.inclusion = "fail";
    throw Object.assign(new StepFailure("inclusion", err.message), { states });
  }
  try {
    const erased = doc.body === null || doc.salt === null;
    const digest = await step("digest", states, async () => {
      if (!receipt.extra) throw new ProofError("the receipt carries no leaf data");
      const claimed = JSON.parse(new TextDecoder().decode(receipt.extra)).digest;
      if (erased) {
        states.digest = "skip";
        return b64decode(doc.digest, "digest");
      }
      const computed = await bodyDigest(b64decode(doc.salt, "salt"), doc.body);
      if (b64encode(computed) !== claimed || b64encode(computed) !== doc.digest) {
        throw new ProofError("SHA-256(salt || JCS(body)) differs from the ledger's digest");
      }
      return computed;
    });
    if (erased) states.digest = "skip";
    const leaf = await step("leaf", states, async () => {
      if (!equal(documentLeafData(doc, digest), receipt.extra)) {
        throw new ProofError("the leaf data does not describe this document");
      }
      if (receipt.index !== BigInt(doc.leafIndex)) throw new ProofError("wrong leaf index");
      const hash = await leafHash(receipt.extra);
      if (b64encode(hash) !== proofInfo.leafHash) throw new ProofError("leaf hash differs");
      return hash;
    });
    const checkpoint = await step("inclusion", states, async () => {
      const cp = parseCheckpoint(noteText(receipt.note));
      await verifyInclusion(receipt.index, cp.size, leaf, receipt.proof, cp.root);
      return { ...cp, note: receipt.note };
    });
    const verifier = await step("signature", states, async () => {
      const v = await parseVerifierKey(vkeyText);
      await openNote(receipt.note, v);
      return v;
    });
    const consistency = await step("consistency", states, () =>
      checkConsistency(verifier, checkpoint, latestNote),
    );
    return { verdict: "pass", states, consistency, checkpoint };
  } catch (err) {
    throw Object.assign(err, { states });
  }
}

// The receipt's checkpoint, the log's latest one and the one this browser verified last
// must all be views of one append-only log.
async function checkConsistency(verifier, receiptCp, latestNote) {
  let latest;
  try {
    latest = { ...parseCheckpoint(await openNote(latestNote, verifier)), note: latestNote };
  } catch (err) {
    throw new StepFailure("signature", `latest checkpoint: ${err.message}`);
  }
  let remembered = null;
  const stored = localStorage.getItem(storeKey(verifier));
  if (stored) {
    try {
      const saved = JSON.parse(stored);
      const cp = parseCheckpoint(await openNote(saved.note, verifier));
      remembered = { ...cp, note: saved.note };
    } catch {
      localStorage.removeItem(storeKey(verifier)); // not ours, or corrupt: start afresh
    }
  }
  const all = [receiptCp, latest, remembered].filter(Boolean);
  const target = all.reduce((a, b) => (b.size > a.size ? b : a));
  const older = all.filter((cp) => cp !== target && cp.size > 0n);
  const info = { from: (remembered ?? target).size, to: target.size };
  const fail = (message) => {
    throw Object.assign(new StepFailure("consistency", message), { consistency: info });
  };
  const wanted = older.filter((cp) => cp.size < target.size);
  for (const cp of older) {
    if (cp.size === target.size && !equal(cp.root, target.root)) {
      fail(`two different trees of size ${cp.size} signed by the hub`);
    }
  }
  if (wanted.length) {
    const fields = wanted
      .map((cp, i) => `p${i}: consistencyProof(fromSize: ${cp.size}, toSize: ${target.size}) { hashes }`)
      .join("\n");
    const payload = await graphql(`query Consistency {\n${fields}\n}`, {});
    for (const [i, cp] of wanted.entries()) {
      const hashes = payload.data?.[`p${i}`]?.hashes;
      if (!hashes) fail(payload.errors?.[0]?.message ?? "no consistency proof");
      try {
        const proof = hashes.map((h, n) => b64decode(h, `consistency hash ${n}`));
        await verifyConsistency(cp.size, target.size, proof, cp.root, target.root);
      } catch (err) {
        fail(err.message);
      }
    }
  }
  localStorage.setItem(
    storeKey(verifier),
    JSON.stringify({ note: target.note, at: new Date().toISOString() }),
  );
  if (!remembered) return { kind: "first", size: target.size };
  if (remembered.size === target.size) return { kind: "same", size: target.size };
  return { kind: "ok", from: remembered.size, to: target.size };
}

// --- rendering ---

function renderVerdict() {
  const box = $("verdict");
  const { result } = current;
  box.hidden = false;
  box.dataset.verdict = result.verdict;
  if (result.verdict === "fail") box.dataset.step = result.step;
  else delete box.dataset.step;
  box.replaceChildren(
    el("p", { class: "verdict-title", text: result.verdict === "pass" ? t("verdict.pass") : t("verdict.fail") }),
  );
  if (result.verdict === "fail") {
    box.append(el("p", { text: t(`step.${result.step}`) }), el("p", { class: "detail", text: result.message }));
  }
  const warning = $("warning");
  warning.hidden = !(result.verdict === "fail" && result.step === "consistency");
  warning.textContent = warning.hidden ? "" : t("step.consistency");

  const list = $("steps");
  list.replaceChildren();
  for (const name of STEPS) {
    const state = result.states[name] ?? "skip";
    const mark = { pass: "✓", fail: "✗", skip: "–" }[state];
    list.append(el("li", { "data-step": name, "data-state": state, text: `${mark} ${t(`steps.${name}`)}` }));
  }
  $("steps-box").hidden = false;
  $("steps-box").open = result.verdict === "fail";

  const cons = $("consistency");
  const c = result.consistency;
  cons.hidden = !c;
  if (c) {
    cons.dataset.consistency = result.verdict === "fail" && result.step === "consistency" ? "failed" : c.kind;
    const key = cons.dataset.consistency === "failed" ? "cons.fail" : `cons.${c.kind}`;
    cons.textContent = t(key, { size: c.size, from: c.from, to: c.to });
  }
}

function row(label, value) {
  return [el("dt", { text: t(label) }), el("dd", { text: value ?? "" })];
}

function renderInvoice() {
  const { doc } = current;
  const box = $("invoice");
  box.hidden = false;
  const body = doc.body;
  const parts = [el("h2", { text: t("inv.title") })];
  const [code, number] = doc.id.split("-");
  const facts = el("dl", { class: "facts" });
  const status = t(`status.${doc.status.toLowerCase()}`);
  if (body) {
    const visit = body.visit ?? {};
    facts.append(
      ...row("inv.issuer", body.issuerName),
      ...row("inv.code", body.billCode),
      ...row("inv.number", body.billNumber),
      ...row("inv.check", body.checkCode),
      ...row("inv.issuedAt", String(body.issuedAt).replace("T", " ").slice(0, 16)),
      ...row("inv.payer", body.payer?.name),
      ...row("inv.idMasked", body.payer?.idMasked),
      ...row("inv.visit", visit.type ? t(`visit.${visit.type}`) : ""),
      ...row("inv.department", visit.department),
      ...row("inv.record", visit.recordNumber),
      ...row("inv.status", status),
      ...row("inv.version", String(doc.version)),
    );
  } else {
    facts.append(
      ...row("inv.code", code),
      ...row("inv.number", number),
      ...row("inv.issuedAt", doc.issuedAt.replace("T", " ").slice(0, 16)),
      ...row("inv.status", status),
    );
  }
  parts.push(facts);
  if (!body) {
    parts.push(el("p", { class: "erased", text: t("erased") }));
    box.replaceChildren(...parts);
    return;
  }
  parts.push(el("h3", { text: t("items.title") }));
  const groups = new Map();
  for (const item of body.items ?? []) {
    if (!groups.has(item.category)) groups.set(item.category, []);
    groups.get(item.category).push(item);
  }
  const table = el("table", { class: "items" });
  table.append(
    el(
      "thead",
      {},
      el(
        "tr",
        {},
        el("th", { scope: "col", text: t("items.name") }),
        el("th", { scope: "col", class: "num", text: t("items.quantity") }),
        el("th", { scope: "col", class: "num", text: t("items.unitPrice") }),
        el("th", { scope: "col", class: "num", text: t("items.amount") }),
      ),
    ),
  );
  for (const [category, items] of groups) {
    const [zh, en] = CATEGORIES[category] ?? [category, category];
    const group = el("tbody", { "data-category": category });
    const subtotal = items.reduce((sum, i) => sum + cents(i.amount), 0n);
    group.append(
      el(
        "tr",
        { class: "category" },
        el("th", { scope: "rowgroup", colspan: "3", text: lang === "zh" ? `${zh} ${en}` : `${en} ${zh}` }),
        el("td", { class: "num", text: money(subtotal) }),
      ),
    );
    for (const item of items) {
      group.append(
        el(
          "tr",
          {},
          el("td", { text: item.name }),
          el("td", { class: "num", text: item.quantity }),
          el("td", { class: "num", text: money(cents(item.unitPrice)) }),
          el("td", { class: "num", text: money(cents(item.amount)) }),
        ),
      );
    }
    table.append(group);
  }
  parts.push(el("div", { class: "scroll" }, table));

  const tot = body.totals ?? {};
  const insurance = cents(tot.insuranceFund) + cents(tot.otherPayments);
  const patient = cents(tot.personalAccount) + cents(tot.personalCash);
  parts.push(el("h3", { text: t("totals.title") }));
  const split = el(
    "div",
    { class: "split" },
    el("p", { class: "total" }, el("span", { text: t("totals.total") }), el("strong", { id: "total", text: money(cents(tot.total)) })),
    el("p", { class: "insurance" }, el("span", { text: t("totals.insurance") }), el("strong", { id: "paid-insurance", text: money(insurance) })),
    el("p", { class: "patient" }, el("span", { text: t("totals.patient") }), el("strong", { id: "paid-patient", text: money(patient) })),
  );
  const detail = el("dl", { class: "facts totals" });
  for (const k of ["insuranceFund", "otherPayments", "personalAccount", "personalCash", "selfPay"]) {
    detail.append(...row(`totals.${k}`, money(cents(tot[k]))));
  }
  parts.push(split, detail);
  box.replaceChildren(...parts);
}

function renderAccess() {
  const { doc } = current;
  const box = $("access");
  box.hidden = false;
  const events = doc.accessEvents ?? [];
  const parts = [el("h2", { text: t("access.title") })];
  if (!events.length) {
    parts.push(el("p", { class: "none", text: t("access.none") }));
  } else {
    const table = el("table", { class: "access" });
    table.append(
      el(
        "thead",
        {},
        el(
          "tr",
          {},
          el("th", { scope: "col", text: t("access.agency") }),
          el("th", { scope: "col", text: t("access.purpose") }),
          el("th", { scope: "col", text: t("access.at") }),
          el("th", { scope: "col", class: "num", text: t("access.entry") }),
        ),
      ),
    );
    const tbody = el("tbody");
    for (const e of events) {
      const when = new Date(e.at);
      const shown = Number.isNaN(when.getTime()) ? e.at : when.toLocaleString(lang === "zh" ? "zh-CN" : "en-GB");
      tbody.append(
        el(
          "tr",
          { "data-agency": e.agency },
          el("td", { text: e.agency }),
          el("td", { text: e.purpose }),
          el("td", {}, el("time", { datetime: e.at, text: shown })),
          el("td", { class: "num", text: `#${e.leafIndex}` }),
        ),
      );
    }
    table.append(tbody);
    parts.push(el("div", { class: "scroll" }, table));
  }
  box.replaceChildren(...parts);
}

function download(id, name, type, content) {
  const link = $(id);
  const url = URL.createObjectURL(new Blob([content], { type }));
  blobUrls.push(url);
  link.href = url;
  link.download = name;
  link.hidden = false;
}

function renderDownloads() {
  const { doc, vkey } = current;
  for (const url of blobUrls.splice(0)) URL.revokeObjectURL(url);
  const base = `${doc.id}-v${doc.version}`;
  download("dl-receipt", `${base}.tlog-proof`, "text/plain", doc.inclusionProof.receipt);
  if (doc.body !== null && doc.salt !== null) {
    const exported = {
      issuer: doc.issuer,
      type: doc.type,
      id: doc.id,
      version: doc.version,
      issuedAt: doc.issuedAt,
      body: doc.body,
      salt: doc.salt,
    };
    download("dl-json", `${base}.json`, "application/json", `${JSON.stringify(exported, null, 2)}\n`);
  } else {
    $("dl-json").hidden = true;
  }
  download("dl-key", "ledger-hub.vkey", "text/plain", `${vkey.trim()}\n`);
  const doc_ = doc.body !== null ? ` --document ${base}.json` : "";
  $("dl-command").textContent = `hub proof verify ${base}.tlog-proof --key '${vkey.trim()}'${doc_}`;
  $("print-link").href = `/verify/print?${new URLSearchParams(current.codes)}`;
  $("downloads").hidden = false;
}

function render() {
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  document.title = t("title");
  for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
  if (current?.status) $("status").textContent = t(current.status);
  if (!current?.doc) return;
  renderVerdict();
  if (current.definition) renderFields();
  else renderInvoice();
  renderAccess();
  renderClaims($("claims"), current.doc.claims ?? null, lang);
  renderDownloads();
}

function renderFields() {
  const { doc, definition } = current;
  const box = $("invoice");
  box.hidden = false;
  const facts = el("dl", { class: "facts" });
  for (const [name, value] of doc.body ? fields(definition, doc.body, lang) : []) {
    facts.append(el("dt", { text: name }), el("dd", { text: value }));
  }
  facts.append(...row("inv.status", t(`status.${doc.status.toLowerCase()}`)), ...row("inv.version", String(doc.version)));
  const parts = [el("h2", { text: title(definition, lang) }), facts];
  if (!doc.body) parts.push(el("p", { class: "erased", text: t("erased") }));
  box.replaceChildren(...parts);
}

function reset(status) {
  current = { status };
  for (const id of ["verdict", "invoice", "access", "claims", "downloads", "steps-box", "consistency", "warning", "witnesses"]) {
    $(id).hidden = true;
  }
  delete $("verdict").dataset.verdict;
  delete $("verdict").dataset.step;
  $("status").dataset.state = status ? status.split(".")[1] : "";
  $("status").textContent = status ? t(status) : "";
}

async function lookup(codes) {
  reset("status.loading");
  let payload;
  let vkey;
  let latest;
  try {
    [payload, vkey, latest] = await Promise.all([
      codes.type
        ? graphql(LOOKUP, { t: codes.type, id: codes.id, k: codes.check })
        : graphql(QUERY, { c: codes.code, n: codes.number, k: codes.check }),
      text("/log/key"),
      text("/log/checkpoint"),
    ]);
  } catch {
    reset("status.error");
    return;
  }
  const doc = codes.type ? payload.data?.lookup : payload.data?.invoice;
  let definition = null;
  if (doc && codes.type) {
    try {
      definition = JSON.parse(await text(`/types/${doc.type}/${doc.typeVersion}`));
    } catch {
      reset("status.error");
      return;
    }
  }
  if (!doc) {
    const code = payload.errors?.[0]?.extensions?.code;
    reset(
      { NOT_FOUND: "status.notfound", RATE_LIMITED: "status.limited", BAD_INPUT: "form.invalid" }[code] ??
        "status.error",
    );
    return;
  }
  let result;
  try {
    result = await verifyDocument(doc, vkey, latest);
  } catch (err) {
    result = {
      verdict: "fail",
      step: err.step ?? "inclusion",
      message: err.message,
      states: err.states ?? {},
      consistency: err.consistency ?? null,
    };
  }
  current = { doc, vkey, result, codes, definition, status: null };
  $("status").textContent = "";
  $("status").dataset.state = "done";
  render();
  showWitnesses(doc.inclusionProof?.receipt ?? "").catch(() => {});
  $("verdict").focus();
}

function readCodes(params) {
  if (params.get("type")) {
    // Any type with a check code: /verify?type=fiscal_receipt&id=...&check=...
    return { type: params.get("type"), id: params.get("id") ?? "", check: params.get("check") ?? "" };
  }
  return { code: params.get("code") ?? "", number: params.get("number") ?? "", check: params.get("check") ?? "" };
}

function valid(codes) {
  if (codes.type !== undefined) {
    return TYPE_RE.test(codes.type) && ID_RE.test(codes.id) && CHECK_RE.test(codes.check);
  }
  return Object.entries(CODES).every(([k, re]) => re.test(codes[k]));
}

function start() {
  const print = document.body.dataset.mode === "print";
  const form = $("lookup");
  const codes = readCodes(new URLSearchParams(location.search));
  for (const [k, v] of Object.entries(codes)) if (form.elements[k]) form.elements[k].value = v;
  $("lang").addEventListener("click", () => {
    lang = lang === "zh" ? "en" : "zh";
    localStorage.setItem(LANG_KEY, lang);
    render();
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const entered = {
      code: form.elements.code.value.trim(),
      number: form.elements.number.value.trim(),
      check: form.elements.check.value.trim(),
    };
    if (!valid(entered)) {
      reset("form.invalid");
      return;
    }
    history.replaceState(null, "", `?${new URLSearchParams(entered)}`);
    lookup(entered);
  });
  if (print) {
    $("print-button").addEventListener("click", () => window.print());
    if (valid(codes) && codes.type === undefined) {
      const query = new URLSearchParams(codes);
      $("qr-img").src = `/verify/qr.svg?${query}`;
      $("qr").hidden = false;
    }
  }
  render();
  if (valid(codes)) lookup(codes);
  else if (Object.values(codes).some(Boolean)) reset("form.invalid");
}

start();
