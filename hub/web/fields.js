// Any document type with a check code on the verify page: its fields, labelled in the
// reader's language from its public definition (GET /types/<name>/<version>): the
// definition's `labels` where given, else the schema's `title`, else the field's pointer.

export const LOOKUP = `query Lookup($t: String!, $id: ID!, $k: String!) {
  lookup(type: $t, id: $id, checkCode: $k) {
    id type typeVersion issuer version status body salt digest leafIndex issuedAt
    inclusionProof { leafIndex treeSize leafHash leafData receipt }
    accessEvents { agency purpose at version leafIndex }
  }
}`;

export const TYPE_RE = /^[a-z][a-z0-9_]{0,63}$/;
export const ID_RE = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;
export const CHECK_RE = /^[0-9A-Za-z]{1,64}$/;

function escapeToken(token) {
  return String(token).replaceAll("~", "~0").replaceAll("/", "~1");
}

function deref(node, root) {
  for (let i = 0; i < 16 && node && typeof node.$ref === "string" && node.$ref.startsWith("#/"); i++) {
    let target = root;
    for (const raw of node.$ref.slice(2).split("/")) {
      target = target?.[raw.replaceAll("~1", "/").replaceAll("~0", "~")];
    }
    node = target;
  }
  return node && typeof node === "object" ? node : null;
}

function schemaAt(schema, tokens) {
  let node = deref(schema, schema);
  for (const token of tokens) {
    if (!node) return null;
    if (node.properties && token in node.properties) node = deref(node.properties[token], schema);
    else if (/^[0-9]+$/.test(token) && node.items) node = deref(node.items, schema);
    else return null;
  }
  return node;
}

// The label of a field: its own pointer's, else with array positions as /0 (how a
// definition names the fields of every item), else the schema title, else the pointer.
export function label(definition, tokens, lang) {
  const labels = definition.labels ?? {};
  const exact = "/" + tokens.map(escapeToken).join("/");
  const generic = "/" + tokens.map((t) => (/^[0-9]+$/.test(t) ? "0" : escapeToken(t))).join("/");
  const given = labels[exact] ?? labels[generic];
  if (given) return given[lang] ?? given.en ?? Object.values(given)[0];
  const title = schemaAt(definition.schema ?? {}, tokens)?.title;
  return typeof title === "string" ? title : exact;
}

export function title(definition, lang) {
  const t = definition.title;
  if (typeof t === "string") return t;
  return t?.[lang] ?? t?.en ?? definition.name;
}

// [label, value] for every leaf of the body, in the body's order.
export function fields(definition, body, lang) {
  const out = [];
  const walk = (value, tokens) => {
    if (value !== null && typeof value === "object") {
      const entries = Array.isArray(value) ? value.map((v, i) => [String(i), v]) : Object.entries(value);
      for (const [k, v] of entries) walk(v, [...tokens, k]);
      return;
    }
    const names = [];
    for (let i = 1; i <= tokens.length; i++) {
      const part = tokens.slice(0, i);
      if (/^[0-9]+$/.test(part[part.length - 1])) names.push(String(Number(part[part.length - 1]) + 1));
      else if (i === tokens.length || part.length === 1) names.push(label(definition, part, lang));
    }
    out.push([names.join(" · "), value === null ? "—" : String(value)]);
  };
  walk(body, []);
  return out;
}
