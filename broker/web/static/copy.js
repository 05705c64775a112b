// Copying text to the clipboard. navigator.clipboard exists only in a
// secure context (https, or http on loopback) and may still refuse (no
// focus, no permission); over plain http from a laptop on the depot LAN it
// is absent. Then a hidden textarea is selected and document.execCommand
// ('copy') copies it, which works for a click on a page served over http.

/**
 * copyText copies text and reports whether it worked. Each attempt is also
 * announced as a "chargemq:copy" event on window, detail {text, via, ok},
 * via being "clipboard" or "execCommand": a hook for tests and for anyone
 * embedding the page.
 */
export async function copyText(text) {
  if (navigator.clipboard && typeof navigator.clipboard.writeText === 'function' && window.isSecureContext) {
    try {
      await navigator.clipboard.writeText(text);
      announce(text, 'clipboard', true);
      return true;
    } catch {
      // Refused (focus, permission): fall through to the fallback.
    }
  }
  const ok = execCopy(text);
  announce(text, 'execCommand', ok);
  return ok;
}

function execCopy(text) {
  const ta = document.getElementById('copy-buffer');
  if (!ta) return false;
  const focused = document.activeElement;
  ta.value = text;
  ta.hidden = false;
  ta.focus({ preventScroll: true });
  ta.select();
  ta.setSelectionRange(0, text.length);
  let ok = false;
  try {
    ok = document.execCommand('copy');
  } catch {
    ok = false;
  }
  ta.value = '';
  ta.hidden = true;
  if (focused && typeof focused.focus === 'function') focused.focus({ preventScroll: true });
  return ok;
}

function announce(text, via, ok) {
  window.dispatchEvent(new CustomEvent('chargemq:copy', { detail: { text, via, ok } }));
}
