// Decodes QR code images in a real browser: each file (SVG or PNG) is drawn onto a canvas by
// headless Chromium (playwright-core) and read with jsQR, so an SVG is checked as a browser
// renders it.
// Usage: node qr-decode.mjs <file>...   Environment: CHROMIUM (default /usr/bin/chromium).
// Prints one JSON line per file: {"file", "width", "height", "text"} (text null: no QR found).
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { chromium } from "playwright-core";

const require = createRequire(import.meta.url);
const jsqr = readFileSync(require.resolve("jsqr/dist/jsQR.js"), "utf8");
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || "/usr/bin/chromium", args: ["--no-sandbox"] });
try {
  const page = await browser.newPage();
  await page.setContent("<!doctype html><title>qr</title>");
  await page.addScriptTag({ content: jsqr });
  for (const file of process.argv.slice(2)) {
    const type = file.endsWith(".svg") ? "image/svg+xml" : "image/png";
    const url = `data:${type};base64,${readFileSync(file).toString("base64")}`;
    const found = await page.evaluate(async (src) => {
      const img = new Image();
      img.src = src;
      await img.decode();
      // A white margin around it, as on a screen.
      const canvas = document.createElement("canvas");
      canvas.width = img.naturalWidth + 40;
      canvas.height = img.naturalHeight + 40;
      const ctx = canvas.getContext("2d");
      ctx.fillStyle = "#fff";
      ctx.fillRect(0, 0, canvas.width, canvas.height);
      ctx.drawImage(img, 20, 20);
      const data = ctx.getImageData(0, 0, canvas.width, canvas.height);
      const code = window.jsQR(data.data, data.width, data.height);
      return { width: img.naturalWidth, height: img.naturalHeight, text: code ? code.data : null };
    }, url);
    process.stdout.write(JSON.stringify({ file, ...found }) + "\n");
  }
} finally {
  await browser.close();
}
