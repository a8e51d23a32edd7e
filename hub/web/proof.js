// Verification primitives for the verify page: JCS (RFC 8785), RFC 9162 Merkle proofs,
// C2SP signed notes, checkpoints and tlog-proof receipts. No DOM; WebCrypto only.
// Ports hub/ledger/tree.py, note.py, checkpoint.py and receipt.py; tests hold the two to
// the same golden vectors.

const HASH_SIZE = 32;
const SIG_PREFIX = "\u2014 "; // EM DASH, space
const RECEIPT_HEADER = "c2sp.org/tlog-proof@v1";
const DECIMAL = /^(0|[1-9][0-9]*)$/;
const MAX_SIZE = (1n << 64n) - 1n;

export class ProofError extends Error {}

export const utf8 = (text) => new TextEncoder().encode(text);

export function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export function equal(a, b) {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

export function b64encode(bytes) {
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin);
}

// Strict standard base64: alphabet, padding and canonical form (as note.b64decode).
export function b64decode(text, what = "base64") {
  if (typeof text !== "string" || !/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4) {
    throw new ProofError(`${what}: invalid base64`);
  }
  const bin = atob(text);
  const bytes = Uint8Array.from(bin, (c) => c.charCodeAt(0));
  if (b64encode(bytes) !== text) throw new ProofError(`${what}: non-canonical base64`);
  return bytes;
}

export async function sha256(bytes) {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
}

// RFC 8785 for the values JSON.parse yields. Object keys sort by UTF-16 code units, which
// is what Array.prototype.sort does without a comparator; numbers and strings serialise
// as ECMAScript's JSON.stringify, which RFC 8785 adopts.
export function jcs(value) {
  if (value === null) return "null";
  switch (typeof value) {
    case "boolean":
      return value ? "true" : "false";
    case "number":
      if (!Number.isFinite(value)) throw new ProofError("JCS: not a finite number");
      return JSON.stringify(value);
    case "string":
      return JSON.stringify(value);
    case "object": {
      if (Array.isArray(value)) return `[${value.map(jcs).join(",")}]`;
      const keys = Object.keys(value).sort();
      return `{${keys.map((k) => `${JSON.stringify(k)}:${jcs(value[k])}`).join(",")}}`;
    }
    default:
      throw new ProofError(`JCS: ${typeof value} is not a JSON value`);
  }
}

export const leafHash = (data) => sha256(concat(Uint8Array.of(0), data));
export const nodeHash = (left, right) => sha256(concat(Uint8Array.of(1), left, right));

function checkHash(h, what) {
  if (!(h instanceof Uint8Array) || h.length !== HASH_SIZE) {
    throw new ProofError(`${what} must be ${HASH_SIZE} bytes`);
  }
}

// Sizes and indexes are BigInt: bit operations on Numbers are 32-bit.
const big = (n) => (typeof n === "bigint" ? n : BigInt(n));

// RFC 9162 2.1.3.2: the root `proof` yields for `leaf` at `index` in a tree of `size`.
export async function rootFromInclusion(index, size, leaf, proof) {
  let fn = big(index);
  let sn = big(size) - 1n;
  if (fn < 0n || fn > sn) throw new ProofError(`index ${index} out of range for size ${size}`);
  checkHash(leaf, "leaf hash");
  let r = leaf;
  for (const [i, p] of proof.entries()) {
    checkHash(p, `proof[${i}]`);
    if (sn === 0n) throw new ProofError(`proof too long: ${proof.length} hashes`);
    if (fn & 1n || fn === sn) {
      r = await nodeHash(p, r);
      while (!(fn & 1n) && fn !== 0n) {
        fn >>= 1n;
        sn >>= 1n;
      }
    } else {
      r = await nodeHash(r, p);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  if (sn !== 0n) throw new ProofError(`proof too short: ${proof.length} hashes`);
  return r;
}

export async function verifyInclusion(index, size, leaf, proof, root) {
  if (!equal(await rootFromInclusion(index, size, leaf, proof), root)) {
    throw new ProofError("inclusion proof does not lead to the root");
  }
}

// RFC 9162 2.1.4.2, with transparency-dev's edge cases (as tree.py).
export async function verifyConsistency(size1, size2, proof, root1, root2) {
  const n1 = big(size1);
  const n2 = big(size2);
  if (n1 < 0n || n2 < n1) throw new ProofError(`sizes ${size1} -> ${size2} do not grow`);
  if (n1 === 0n) throw new ProofError("consistency proof from an empty tree is meaningless");
  if (n1 === n2) {
    if (proof.length) throw new ProofError("equal sizes need an empty proof");
    if (!equal(root1, root2)) throw new ProofError("same size, different roots");
    return;
  }
  if (!proof.length) throw new ProofError("empty proof for different sizes");
  checkHash(root1, "root1");
  proof.forEach((p, i) => checkHash(p, `proof[${i}]`));
  const path = [...proof];
  if ((n1 & (n1 - 1n)) === 0n) path.unshift(root1);
  let fn = n1 - 1n;
  let sn = n2 - 1n;
  while (fn & 1n) {
    fn >>= 1n;
    sn >>= 1n;
  }
  let fr = path[0];
  let sr = path[0];
  for (const c of path.slice(1)) {
    if (sn === 0n) throw new ProofError(`proof too long: ${proof.length} hashes`);
    if (fn & 1n || fn === sn) {
      fr = await nodeHash(c, fr);
      sr = await nodeHash(c, sr);
      while (!(fn & 1n) && fn !== 0n) {
        fn >>= 1n;
        sn >>= 1n;
      }
    } else {
      sr = await nodeHash(sr, c);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  if (sn !== 0n) throw new ProofError(`proof too short: ${proof.length} hashes`);
  if (!equal(fr, root1)) throw new ProofError("consistency proof does not lead to root1");
  if (!equal(sr, root2)) throw new ProofError("consistency proof does not lead to root2");
}

function parseDecimal(text, what) {
  if (!DECIMAL.test(text) || BigInt(text) > MAX_SIZE) {
    throw new ProofError(`${what}: not a decimal without leading zeros`);
  }
  return BigInt(text);
}

// C2SP tlog-checkpoint body: origin, size, base64 root, extension lines.
export function parseCheckpoint(text) {
  if (!text.endsWith("\n")) throw new ProofError("checkpoint: must end with a newline");
  const lines = text.slice(0, -1).split("\n");
  if (lines.length < 3) throw new ProofError("checkpoint: needs origin, size and root");
  const [origin, sizeLine, rootLine] = lines;
  if (!origin) throw new ProofError("checkpoint: empty origin");
  const size = parseDecimal(sizeLine, "checkpoint: tree size");
  const root = b64decode(rootLine, "checkpoint: root hash");
  checkHash(root, "checkpoint: root hash");
  return { origin, size, root };
}

// `<name>+<hex key ID>+base64(0x01 || key)`; the key ID is recomputed and checked.
export async function parseVerifierKey(vkey) {
  const parts = vkey.trim().split("+");
  if (parts.length < 3) throw new ProofError("verifier key: expected <name>+<id>+<key>");
  const [name, idHex] = parts;
  const data = b64decode(parts.slice(2).join("+"), "verifier key");
  if (!/^[0-9a-fA-F]{8}$/.test(idHex)) throw new ProofError("verifier key: bad key ID");
  if (data.length !== 33 || data[0] !== 1) throw new ProofError("verifier key: not Ed25519");
  const raw = data.slice(1);
  const keyId = (await sha256(concat(utf8(name), Uint8Array.of(0x0a, 1), raw))).slice(0, 4);
  if (!equal(keyId, Uint8Array.from(idHex.match(/../g), (h) => parseInt(h, 16)))) {
    throw new ProofError("verifier key: key ID does not match the key");
  }
  const key = await crypto.subtle.importKey("raw", raw, { name: "Ed25519" }, false, ["verify"]);
  return { name, keyId, key, text: vkey.trim() };
}

// A C2SP signed note: the text (up to and including the newline before the last blank
// line) must carry a valid signature by `verifier`; returns the text.
export async function openNote(note, verifier) {
  const split = note.lastIndexOf("\n\n");
  if (split < 0 || !note.endsWith("\n")) throw new ProofError("note: malformed");
  const text = note.slice(0, split + 1);
  const lines = note.slice(split + 2, -1).split("\n");
  let signed = false;
  for (const line of lines) {
    if (!line.startsWith(SIG_PREFIX)) throw new ProofError("note: bad signature line");
    const [name, b64, ...rest] = line.slice(SIG_PREFIX.length).split(" ");
    if (rest.length || !b64) throw new ProofError("note: bad signature line");
    const blob = b64decode(b64, "note: signature");
    if (blob.length < 5) throw new ProofError("note: signature too short");
    if (name !== verifier.name || !equal(blob.slice(0, 4), verifier.keyId)) continue;
    const ok = await crypto.subtle.verify("Ed25519", verifier.key, blob.slice(4), utf8(text));
    if (!ok) throw new ProofError(`invalid signature for key ${name}`);
    signed = true;
  }
  if (!signed) throw new ProofError("note has no valid signature by the hub's key");
  return text;
}

// C2SP tlog-proof@v1 text -> {index, proof, note, extra}.
export function parseReceipt(text) {
  const at = text.indexOf("\n\n");
  if (at < 0) throw new ProofError("receipt: no empty line before the checkpoint");
  const lines = text.slice(0, at).split("\n");
  const note = text.slice(at + 2);
  if (lines[0] !== RECEIPT_HEADER) throw new ProofError(`receipt: must start ${RECEIPT_HEADER}`);
  let pos = 1;
  let extra = null;
  if (lines[pos]?.startsWith("extra ")) extra = b64decode(lines[pos++].slice(6), "extra line");
  if (!lines[pos]?.startsWith("index ")) throw new ProofError("receipt: missing index line");
  const index = parseDecimal(lines[pos].slice(6), "index");
  const proof = lines.slice(pos + 1).map((l, i) => b64decode(l, `proof hash ${i}`));
  proof.forEach((h, i) => checkHash(h, `proof hash ${i}`));
  if (!note.endsWith("\n")) throw new ProofError("receipt: checkpoint missing");
  return { index, proof, note, extra };
}

export function documentLeafData(doc, digest) {
  return utf8(
    jcs({
      v: 1,
      kind: "document",
      issuer: doc.issuer,
      type: doc.type,
      id: doc.id,
      version: doc.version,
      digest: b64encode(digest),
      issuedAt: doc.issuedAt,
    }),
  );
}

export const bodyDigest = async (salt, body) => sha256(concat(salt, utf8(jcs(body))));
