// The dashboard shell: sign-in gate, navigation (collapses into a menu on
// phones) and a hash router, so every page has a link and the controller
// only ever serves index.html at "/".

import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { codeFromLocation, exchangeCode, certificateSession, describe, onSessionChange, session, signOut } from "./api";
import { startLive, stopLive, useLive } from "./live";
import { Login } from "./pages/login";
import { Overview } from "./pages/overview";
import { Topology } from "./pages/topology";
import { Traffic } from "./pages/traffic";
import { Devices } from "./pages/devices";
import { People } from "./pages/people";
import { PolicyPage } from "./pages/policy";
import { Audit } from "./pages/audit";
import { Dns } from "./pages/dns";
import { Onboard } from "./pages/onboard";
import "./style.css";

interface Route {
  path: string;
  label: string;
  page: () => preact.JSX.Element;
}

const ROUTES: Route[] = [
  { path: "overview", label: "Overview", page: Overview },
  { path: "topology", label: "Topology", page: Topology },
  { path: "traffic", label: "Traffic", page: Traffic },
  { path: "devices", label: "Devices & certificates", page: Devices },
  { path: "people", label: "People & tokens", page: People },
  { path: "policy", label: "Policy", page: PolicyPage },
  { path: "audit", label: "Audit log", page: Audit },
  { path: "dns", label: "DNS", page: Dns },
  { path: "onboard", label: "Add a host", page: Onboard },
];

function currentPath(): string {
  const path = window.location.hash.replace(/^#\/?/, "").split("?")[0];
  return ROUTES.some((r) => r.path === path) ? path : "overview";
}

function useRoute(): string {
  const [path, setPath] = useState(currentPath());
  useEffect(() => {
    const onHash = () => setPath(currentPath());
    window.addEventListener("hashchange", onHash);
    return () => window.removeEventListener("hashchange", onHash);
  }, []);
  return path;
}

function useSignedIn(): boolean {
  const [signedIn, setSignedIn] = useState(session() !== null);
  useEffect(() => onSessionChange(() => setSignedIn(session() !== null)), []);
  return signedIn;
}

function StatusDot() {
  const live = useLive();
  const label: Record<string, string> = {
    off: "offline",
    connecting: "connecting",
    live: "live",
    retrying: "reconnecting",
    unavailable: "no live data",
  };
  return (
    <span class={`feed feed-${live.stream}`} title={live.streamError ?? "monitoring stream"} data-testid="stream-state">
      <span class="dot" /> {label[live.stream]}
    </span>
  );
}

function Shell() {
  const path = useRoute();
  const live = useLive();
  const [menuOpen, setMenuOpen] = useState(false);
  useEffect(() => setMenuOpen(false), [path]);
  const route = ROUTES.find((r) => r.path === path) ?? ROUTES[0];
  const Page = route.page;
  return (
    <div class={`shell ${menuOpen ? "menu-open" : ""}`}>
      <header class="topbar">
        <button
          type="button"
          class="menu-button"
          aria-label="Menu"
          aria-expanded={menuOpen}
          aria-controls="nav"
          onClick={() => setMenuOpen(!menuOpen)}
        >
          <span aria-hidden="true">☰</span>
        </button>
        <a class="brand" href="#/overview">
          ZTOS <span class="network">{live.security?.network ?? ""}</span>
        </a>
        <StatusDot />
        <span class="who" data-testid="who">
          {session()?.name ?? ""}
          {session()?.role ? ` (${session()?.role})` : ""}
        </span>
        <button type="button" class="link signout" onClick={() => void signOut()}>
          Sign out
        </button>
      </header>
      <nav id="nav" class="nav" aria-label="Pages">
        {ROUTES.map((r) => (
          <a key={r.path} href={`#/${r.path}`} class={r.path === path ? "active" : ""} aria-current={r.path === path ? "page" : undefined}>
            {r.label}
          </a>
        ))}
      </nav>
      <main class="content" data-page={route.path}>
        <Page />
      </main>
    </div>
  );
}

function App() {
  const signedIn = useSignedIn();
  const [starting, setStarting] = useState(!signedIn);
  const [loginError, setLoginError] = useState<string | null>(null);

  useEffect(() => {
    // A login link carries its one-time code; trade it at once and drop it from the address bar.
    const code = codeFromLocation();
    if (code) {
      window.history.replaceState(null, "", `${window.location.pathname}#/overview`);
      exchangeCode(code)
        .catch((err: unknown) => setLoginError(describe(err)))
        .finally(() => setStarting(false));
      return;
    }
    if (session()) return;
    // A browser that presented a client certificate gets a session without a code.
    certificateSession()
      .catch(() => undefined)
      .finally(() => setStarting(false));
  }, []);

  useEffect(() => {
    if (signedIn) startLive();
    else stopLive();
  }, [signedIn]);

  if (signedIn) return <Shell />;
  if (starting) return <p class="muted loading center">Signing in…</p>;
  return <Login initialError={loginError} />;
}

render(<App />, document.getElementById("app")!);
