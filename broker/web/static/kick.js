// The kick confirmation: one modal <dialog> for charge points (with the
// optional block of reconnects) and MQTT clients. The dialog stays open
// until the server answered, so a refusal is shown where it was asked for.
import { setText } from './util.js';

export class KickDialog {
  constructor(dialog) {
    this.dialog = dialog;
    this.form = dialog.querySelector('form');
    this.name = dialog.querySelector('#kick-name');
    this.text = dialog.querySelector('#kick-text');
    this.block = dialog.querySelector('#kick-block');
    this.error = dialog.querySelector('#kick-error');
    this.confirmBtn = dialog.querySelector('#kick-confirm');
    this.cancelBtn = dialog.querySelector('#kick-cancel');
    this.action = null;
    this.form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      if (ev.submitter === this.confirmBtn) this.confirm();
      else dialog.close('cancel');
    });
    dialog.addEventListener('close', () => {
      this.action = null;
      this.confirmBtn.disabled = false;
      // The dialog gives the focus back to where it was; when that is gone
      // (the row was re-rendered), refocus says where it goes instead.
      const refocus = this.refocus;
      this.refocus = null;
      if (refocus && (!document.activeElement || document.activeElement === document.body)) refocus();
    });
  }

  get isOpen() {
    return this.dialog.open;
  }

  /**
   * ask opens the dialog. action(block) does the kick (block is "" or a
   * duration such as "60s") and throws to keep the dialog open with its
   * message; withBlock shows the block choice (charge points only);
   * refocus() places the focus when the dialog closes and the element it
   * was opened from has gone.
   */
  ask({ name, text, withBlock, action, refocus }) {
    this.refocus = refocus || null;
    setText(this.name, name);
    setText(this.text, text);
    this.block.hidden = !withBlock;
    this.form.elements.block[0].checked = true;
    this.error.hidden = true;
    this.confirmBtn.disabled = false;
    this.action = action;
    this.dialog.showModal();
    this.cancelBtn.focus();
  }

  async confirm() {
    const action = this.action;
    if (!action) return;
    this.confirmBtn.disabled = true;
    this.error.hidden = true;
    try {
      await action(this.block.hidden ? '' : this.form.elements.block.value);
      if (this.action === action) this.dialog.close('kick');
    } catch (err) {
      if (this.action !== action) return;
      setText(this.error, err.message);
      this.error.hidden = false;
      this.confirmBtn.disabled = false;
    }
  }
}
