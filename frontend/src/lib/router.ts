// A tiny path router: `/` (home) and `/conversations/<id>`. The server (and Vite) answer
// index.html for these paths, so links and reloads work.

import { useEffect, useState } from "preact/hooks";

export type Route = { name: "home" } | { name: "conversation"; id: string };

export function parseRoute(pathname: string): Route {
  const m = /^\/conversations\/([^/]+)\/?$/.exec(pathname);
  if (m) return { name: "conversation", id: decodeURIComponent(m[1]) };
  return { name: "home" };
}

const listeners = new Set<() => void>();

export function navigate(path: string, replace = false) {
  if (path === window.location.pathname) return;
  if (replace) history.replaceState(null, "", path);
  else history.pushState(null, "", path);
  for (const fn of [...listeners]) fn();
}

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(window.location.pathname));
  useEffect(() => {
    const update = () => setRoute(parseRoute(window.location.pathname));
    listeners.add(update);
    window.addEventListener("popstate", update);
    return () => {
      listeners.delete(update);
      window.removeEventListener("popstate", update);
    };
  }, []);
  return route;
}
