/// <reference types="vite/client" />

interface ImportMetaEnv {
  /** Base URL of the hub; empty or unset: the page's own origin (the hub serves the demo). */
  readonly VITE_HUB_URL?: string;
}

interface ImportMeta {
  readonly env: ImportMetaEnv;
}
