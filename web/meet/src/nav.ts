// Client-side navigation: the server answers every app path with index.html (crates/moim-app/src/meet.rs).

type Route = (path: string, params: URLSearchParams) => Promise<Node>;
let router: Route | null = null;

export function setRouter(r: Route): void {
  router = r;
}

export async function navigate(to: string, replace = false): Promise<void> {
  if (to !== location.pathname + location.search) {
    if (replace) history.replaceState(null, '', to);
    else history.pushState(null, '', to);
  }
  await render();
}

export async function render(): Promise<void> {
  if (!router) return;
  const view = await router(location.pathname, new URLSearchParams(location.search));
  document.getElementById('app')?.replaceChildren(view);
}

window.addEventListener('popstate', () => void render());
