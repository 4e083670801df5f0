// Builds the dashboard into the Python package (src/ztos/web/static), which the
// controller serves: index.html at "/" and everything else under "/ui/".
// Every library is bundled here, at build time: the running dashboard loads
// nothing from a CDN.
import { defineConfig } from "vite";

export default defineConfig({
  base: "/ui/",
  oxc: { jsx: { runtime: "automatic", importSource: "preact" } },
  build: {
    outDir: "../src/ztos/web/static",
    emptyOutDir: true,
    target: "es2022",
    sourcemap: false,
    chunkSizeWarningLimit: 700,
    assetsInlineLimit: 0,
  },
  server: {
    // `npm run dev` against a controller: ZTOS_DEV_CONTROLLER=https://[::1]:8443 npm run dev
    proxy: process.env.ZTOS_DEV_CONTROLLER
      ? { "/api": { target: process.env.ZTOS_DEV_CONTROLLER, secure: false, changeOrigin: true } }
      : undefined,
  },
});
