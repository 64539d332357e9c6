import { defineConfig } from 'vite';

// Built into dist/, which `moim serve` serves at / (see crates/moim-app/src/meet.rs).
export default defineConfig({
  base: '/',
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: true,
    chunkSizeWarningLimit: 1024,
  },
});
