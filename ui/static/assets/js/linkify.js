// Links in message text: http(s) URLs become <a> elements, built as DOM
// nodes (never innerHTML), opening in a new tab without the opener or a
// referrer. Nothing is fetched for them (no previews).

import { el } from './util.js';

// A URL runs to the next white space or angle bracket; what it ends with
// is trimmed below. Only http and https: javascript:, data: and the like
// stay text.
const URL_RE = /\bhttps?:\/\/[^\s<>"]+/giu;
const TRAILING = new Set([...'.,:;!?\'"’”)]}>']);
const OPENER = { ')': '(', ']': '[', '}': '{' };

/**
 * trimUrl drops punctuation that ends a sentence rather than the URL, but
 * keeps a closing bracket that closes one opened inside the URL
 * ("https://en.wikipedia.org/wiki/Go_(game)").
 */
function trimUrl(s) {
  while (s.length && TRAILING.has(s[s.length - 1])) {
    const last = s[s.length - 1];
    const open = OPENER[last];
    if (open && s.split(open).length >= s.split(last).length) return s;
    s = s.slice(0, -1);
  }
  return s;
}

/** linkNodes splits text into text nodes and <a> elements for its http(s) URLs. */
export function linkNodes(text) {
  const out = [];
  let at = 0;
  for (const m of text.matchAll(URL_RE)) {
    const url = trimUrl(m[0]);
    let href;
    try {
      const u = new URL(url);
      if (u.protocol !== 'http:' && u.protocol !== 'https:') continue;
      href = u.href;
    } catch {
      continue;
    }
    if (m.index > at) out.push(document.createTextNode(text.slice(at, m.index)));
    out.push(el('a', { href, rel: 'noopener noreferrer', target: '_blank', 'data-testid': 'message-link', dir: 'ltr', text: url }));
    at = m.index + url.length;
  }
  if (at < text.length) out.push(document.createTextNode(text.slice(at)));
  return out;
}
