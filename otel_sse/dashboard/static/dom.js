// DOM helpers: elements built from text only (never HTML), Jaeger links.

/** An element with a class and text content. */
export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

/** Set text only when it changed (cheaper for the layout than always writing it). */
export function setText(node, text) {
  const value = text === undefined || text === null ? "" : String(text);
  if (node.textContent !== value) node.textContent = value;
}

/** A link that opens in Jaeger, or hidden without a URL. */
export function jaegerAnchor(className, label) {
  const link = el("a", "jaeger " + (className || ""), label || "Jaeger");
  link.target = "_blank";
  link.rel = "noopener noreferrer";
  return link;
}

export function setLink(link, href) {
  if (href) {
    if (link.getAttribute("href") !== href) link.href = href;
    link.hidden = false;
  } else {
    link.removeAttribute("href");
    link.hidden = true;
  }
}

/** Set a `data-*` attribute only when it changed. */
export function setData(node, name, value) {
  const text = value === undefined || value === null ? "" : String(value);
  if (node.dataset[name] !== text) node.dataset[name] = text;
}

/** Replace the class names that start with `prefix` by `prefix + value`. */
export function setStateClass(node, prefix, value) {
  const wanted = prefix + value;
  if (node.classList.contains(wanted)) return;
  for (const name of [...node.classList]) if (name.startsWith(prefix)) node.classList.remove(name);
  node.classList.add(wanted);
}
