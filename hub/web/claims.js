// The verify page's "who reimbursed this bill" list: the claims agencies booked on it.
const TEXT = {
  zh: {
    title: "报销记录",
    none: "尚无机构报销此票据。",
    line: "{agency} 已报销 {amount}，{date}",
    released: "（已撤销）",
    disputed: "（票据已冲红，报销待处理）",
  },
  en: {
    title: "Who reimbursed this invoice",
    none: "No agency has reimbursed this invoice.",
    line: "Reimbursed by {agency}, {amount}, on {date}",
    released: " (undone)",
    disputed: " (disputed: the invoice was reversed)",
  },
};

function yuan(text) {
  const [whole, part = ""] = String(text).split(".");
  return `¥${whole}.${part.padEnd(2, "0").slice(0, 2)}`;
}

function day(at, lang) {
  const when = new Date(at);
  if (Number.isNaN(when.getTime())) return at;
  return when.toLocaleDateString(lang === "zh" ? "zh-CN" : "en-GB", { year: "numeric", month: "long", day: "numeric" });
}

// Fill `box` with one line per claim; `claims` is null when the hub shows none to this reader.
export function renderClaims(box, claims, lang) {
  const text = TEXT[lang] ?? TEXT.en;
  box.hidden = claims == null;
  if (claims == null) return;
  const title = document.createElement("h2");
  title.textContent = text.title;
  const parts = [title];
  if (!claims.length) {
    const none = document.createElement("p");
    none.className = "none";
    none.textContent = text.none;
    parts.push(none);
  } else {
    const list = document.createElement("ul");
    list.className = "claims";
    for (const c of claims) {
      const item = document.createElement("li");
      item.dataset.agency = c.agency;
      item.dataset.status = c.status;
      const values = { agency: c.agency, amount: yuan(c.amount), date: day(c.at, lang) };
      let line = text.line.replace(/\{(\w+)\}/g, (_, k) => values[k] ?? "");
      if (c.status === "RELEASED") line += text.released;
      if (c.status === "DISPUTED") line += text.disputed;
      item.textContent = line;
      list.append(item);
    }
    parts.push(list);
  }
  box.replaceChildren(...parts);
}
