// Every failure a person can meet, said in words that tell them what to do, and shown in the page.

import { ApiError, Unreachable } from './api';
import { h } from './dom';
import { t } from './i18n';

/** What went wrong getting a camera or microphone (getUserMedia's DOMException names). */
export function deviceProblem(e: unknown): string {
  if (!window.isSecureContext) return t('errInsecure');
  const name = e instanceof DOMException || e instanceof Error ? e.name : '';
  switch (name) {
    case 'NotAllowedError':
    case 'SecurityError':
      return t('errCameraBlocked');
    case 'NotFoundError':
    case 'OverconstrainedError':
      return t('errNoDevice');
    case 'NotReadableError':
    case 'AbortError':
      return t('errDeviceBusy');
    default:
      return e instanceof Error ? e.message : String(e);
  }
}

/** What went wrong talking to the app API. */
export function apiProblem(e: unknown): string {
  if (e instanceof Unreachable) return t('errServerDown');
  if (e instanceof ApiError) {
    if (e.code === 'room_not_found') return t('errRoomNotFound');
    if (e.code === 'guests_not_allowed' || e.code === 'unauthenticated') return t('errInviteNeeded');
    return t('errApi', { message: e.message });
  }
  return e instanceof Error ? e.message : String(e);
}

/** An alert box for the page; `role="alert"` so screen readers say it at once. */
export function alertBox(message: string, id?: string): HTMLElement {
  return h('p', { class: 'alert', role: 'alert', id, 'data-testid': 'problem' }, message);
}

/** Shows `message` in the page's one problem slot, replacing the last. */
export function report(message: string): void {
  document.getElementById('problem')?.remove();
  const box = alertBox(message, 'problem');
  const root = document.getElementById('app');
  root?.prepend(box);
}
