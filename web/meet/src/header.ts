// The bar on every page: the name, the language switch, and who is logged in.

import { h } from './dom';
import { currentLang, setLang, t, type Lang } from './i18n';

export function header(onLanguage: () => void, right?: Node): HTMLElement {
  const select = h(
    'select',
    { 'aria-label': t('language'), class: 'lang' },
    h('option', { value: 'en' }, 'English'),
    h('option', { value: 'ko' }, '한국어'),
  );
  select.value = currentLang();
  select.addEventListener('change', () => {
    setLang(select.value as Lang);
    onLanguage();
  });
  return h('header', { class: 'bar' }, h('a', { href: '/', class: 'brand' }, t('appName')), h('span', { class: 'spacer' }), right ?? null, select);
}
