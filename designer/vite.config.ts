// The client is built into dist/, which the designer's server (dp_designer) serves at "/":
// everything is bundled, nothing is loaded from a CDN at run time.
import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

export default defineConfig({
  plugins: [react()],
  base: "./",
  build: { outDir: "dist", chunkSizeWarningLimit: 4000 },
  server: { proxy: { "/api": "http://127.0.0.1:3001" } },
  test: { environment: "node", globals: true },
});
