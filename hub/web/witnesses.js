// Who witnessed the receipt's checkpoint: the log's C2SP tlog-policy (GET /log/policy),
// each witness's tlog-cosignature v1 checked here with WebCrypto Ed25519, and its quorum.
// A checkpoint the quorum did not cosign may be a view shown to this visitor alone.
import { ProofError, b64decode, concat, equal, parseReceipt, sha256, utf8 } from "./proof.js";

const SIG_PREFIX = "— ";
const TEXT = {
  en: {
    title: "Witnessed by",
    ok: "Independent institutions cosigned this checkpoint: the hub cannot show you a history they have not seen.",
    none: "Not witnessed: the witnesses named by the log's policy did not cosign this checkpoint. The hub may be showing you a different history from everyone else.",
    bad: "A witness's cosignature on this checkpoint is invalid: do not trust this proof.",
  },
  zh: {
    title: "见证机构",
    ok: "独立机构已联署此检查点：账本无法向您展示它们未见过的历史。",
    none: "未经见证：账本策略所列的见证机构未联署此检查点。平台可能向您展示了与他人不同的历史。",
    bad: "见证机构对此检查点的联署签名无效：请勿信任此证明。",
  },
};

const hex = (text) => Uint8Array.from(text.match(/../g), (h) => parseInt(h, 16));

// `<name>+<hex key ID>+base64(0x04 || key)`; the key ID is recomputed and checked.
async function parseCosignerKey(vkey) {
  const parts = vkey.split("+");
  if (parts.length < 3 || !/^[0-9a-fA-F]{8}$/.test(parts[1])) throw new ProofError("witness key: malformed");
  const data = b64decode(parts.slice(2).join("+"), "witness key");
  if (data.length !== 33 || data[0] !== 4) throw new ProofError("witness key: not a cosignature v1 key");
  const keyId = (await sha256(concat(utf8(parts[0]), Uint8Array.of(0x0a), data))).slice(0, 4);
  if (!equal(keyId, hex(parts[1]))) throw new ProofError("witness key: key ID does not match");
  const key = await crypto.subtle.importKey("raw", data.slice(1), { name: "Ed25519" }, false, ["verify"]);
  return { name: parts[0], keyId, key };
}

// The policy lines the page needs: witnesses, groups and the quorum (c2sp.org/tlog-policy).
export async function parsePolicy(text) {
  const witnesses = new Map();
  const groups = new Map();
  let quorum = null;
  for (const raw of text.split("\n")) {
    const words = raw.trim().split(/[ \t]+/).filter(Boolean);
    if (!words.length || words[0].startsWith("#")) continue;
    const [keyword, ...args] = words;
    if (keyword === "witness") witnesses.set(args[0], await parseCosignerKey(args[1]));
    else if (keyword === "group") {
      const members = args.slice(2);
      const k = args[1] === "all" ? members.length : args[1] === "any" ? 1 : Number(args[1]);
      groups.set(args[0], { k, members });
    } else if (keyword === "quorum") quorum = args[0];
  }
  if (!quorum) throw new ProofError("policy: no quorum");
  return { witnesses, groups, quorum };
}

function witnessed(policy, name, cosigned) {
  if (name === "none") return true;
  if (policy.witnesses.has(name)) return cosigned.has(name);
  const group = policy.groups.get(name);
  if (!group) return false;
  return group.members.filter((m) => witnessed(policy, m, cosigned)).length >= group.k;
}

// The valid cosignatures on `note` by the policy's witnesses: [{name, at}]; a known
// witness's line that does not verify throws, as signed-note asks.
export async function cosignatures(note, policy) {
  const split = note.lastIndexOf("\n\n");
  const text = note.slice(0, split + 1);
  const found = [];
  for (const line of note.slice(split + 2, -1).split("\n")) {
    if (!line.startsWith(SIG_PREFIX)) continue;
    const [keyName, b64] = line.slice(SIG_PREFIX.length).split(" ");
    const blob = b64decode(b64 ?? "", "cosignature");
    for (const [name, w] of policy.witnesses) {
      if (w.name !== keyName || !equal(blob.slice(0, 4), w.keyId)) continue;
      if (blob.length !== 76) throw new ProofError(`cosignature of ${name}: wrong length`);
      const time = new DataView(blob.buffer, blob.byteOffset + 4, 8).getBigUint64(0);
      const message = utf8(`cosignature/v1\ntime ${time}\n${text}`);
      if (!(await crypto.subtle.verify("Ed25519", w.key, blob.slice(12), message))) {
        throw new ProofError(`invalid cosignature by ${name}`);
      }
      found.push({ name, at: new Date(Number(time) * 1000).toISOString() });
    }
  }
  return found;
}

let shown = null; // {state, found}: re-drawn in the page's language when it switches

function draw() {
  const box = document.getElementById("witnesses");
  if (!box || !shown) return;
  const t = TEXT[document.documentElement.lang.startsWith("zh") ? "zh" : "en"];
  const { state, found } = shown;
  box.dataset.witnessed = state;
  box.setAttribute("role", state === "yes" ? "status" : "alert");
  const list = document.createElement("ul");
  for (const c of found) {
    const item = document.createElement("li");
    item.dataset.witness = c.name;
    item.textContent = `${c.name} · ${c.at}`;
    list.append(item);
  }
  const title = document.createElement("h2");
  title.textContent = t.title;
  const verdict = document.createElement("p");
  verdict.textContent = t[state === "yes" ? "ok" : state === "no" ? "none" : "bad"];
  box.replaceChildren(title, verdict, list);
  box.hidden = false;
}

// Fill #witnesses for the receipt's checkpoint; hidden when the log has no policy.
export async function showWitnesses(receiptText) {
  const box = document.getElementById("witnesses");
  if (!box) return;
  box.hidden = true;
  shown = null;
  const response = await fetch("/log/policy", { credentials: "omit", cache: "no-store" });
  if (response.status === 204) return; // the log names no witnesses
  let state = "no";
  let found = [];
  try {
    const policy = await parsePolicy(await response.text());
    found = await cosignatures(parseReceipt(receiptText).note, policy);
    state = witnessed(policy, policy.quorum, new Set(found.map((c) => c.name))) ? "yes" : "no";
  } catch {
    state = "bad";
  }
  shown = { state, found };
  draw();
}

// Once every click handler has run, the page's own among them (it switches the language):
// a task, not a microtask, which would run between the two handlers.
document.getElementById("lang")?.addEventListener("click", () => setTimeout(draw));
