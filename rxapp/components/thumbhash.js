// ThumbHash placeholders (https://evanw.github.io/thumbhash/): a result row carries its image's
// ThumbHash (~25 bytes, base64); this decodes it to a 32-px picture of the right shape and
// colours, painted as the <img>'s background in the frame the row arrives, before any fetch.
// The decoder is the published reference algorithm (MIT), shortened; results are cached per hash.
const thumbHashPlaceholders = new Map();

function thumbHashToRGBA(hash) {
  const { PI, min, max, cos, round } = Math;
  const header24 = hash[0] | (hash[1] << 8) | (hash[2] << 16);
  const header16 = hash[3] | (hash[4] << 8);
  const lDc = (header24 & 63) / 63;
  const pDc = ((header24 >> 6) & 63) / 31.5 - 1;
  const qDc = ((header24 >> 12) & 63) / 31.5 - 1;
  const lScale = ((header24 >> 18) & 31) / 31;
  const hasAlpha = header24 >> 23;
  const pScale = ((header16 >> 3) & 63) / 63;
  const qScale = ((header16 >> 9) & 63) / 63;
  const isLandscape = header16 >> 15;
  const lx = max(3, isLandscape ? (hasAlpha ? 5 : 7) : header16 & 7);
  const ly = max(3, isLandscape ? header16 & 7 : hasAlpha ? 5 : 7);
  const aDc = hasAlpha ? (hash[5] & 15) / 15 : 1;
  const aScale = (hash[5] >> 4) / 15;
  const acStart = hasAlpha ? 6 : 5;
  let acIndex = 0;
  const decodeChannel = (nx, ny, scale) => {
    const ac = [];
    for (let cy = 0; cy < ny; cy++)
      for (let cx = cy ? 0 : 1; cx * ny < nx * (ny - cy); cx++)
        ac.push((((hash[acStart + (acIndex >> 1)] >> ((acIndex++ & 1) << 2)) & 15) / 7.5 - 1) * scale);
    return ac;
  };
  const lAc = decodeChannel(lx, ly, lScale);
  const pAc = decodeChannel(3, 3, pScale * 1.25);
  const qAc = decodeChannel(3, 3, qScale * 1.25);
  const aAc = hasAlpha && decodeChannel(5, 5, aScale);
  const ratio = thumbHashAspectRatio(hash);
  const w = round(ratio > 1 ? 32 : 32 * ratio);
  const h = round(ratio > 1 ? 32 / ratio : 32);
  const rgba = new Uint8ClampedArray(w * h * 4);
  const fx = [];
  const fy = [];
  for (let y = 0, i = 0; y < h; y++) {
    for (let x = 0; x < w; x++, i += 4) {
      let l = lDc, p = pDc, q = qDc, a = aDc;
      for (let cx = 0, n = max(lx, hasAlpha ? 5 : 3); cx < n; cx++) fx[cx] = cos((PI / w) * (x + 0.5) * cx);
      for (let cy = 0, n = max(ly, hasAlpha ? 5 : 3); cy < n; cy++) fy[cy] = cos((PI / h) * (y + 0.5) * cy);
      for (let cy = 0, j = 0; cy < ly; cy++)
        for (let cx = cy ? 0 : 1, fy2 = fy[cy] * 2; cx * ly < lx * (ly - cy); cx++, j++) l += lAc[j] * fx[cx] * fy2;
      for (let cy = 0, j = 0; cy < 3; cy++) {
        for (let cx = cy ? 0 : 1, fy2 = fy[cy] * 2; cx < 3 - cy; cx++, j++) {
          const f = fx[cx] * fy2;
          p += pAc[j] * f;
          q += qAc[j] * f;
        }
      }
      if (hasAlpha)
        for (let cy = 0, j = 0; cy < 5; cy++)
          for (let cx = cy ? 0 : 1, fy2 = fy[cy] * 2; cx < 5 - cy; cx++, j++) a += aAc[j] * fx[cx] * fy2;
      const b = l - (2 / 3) * p;
      const r = (3 * l - b + q) / 2;
      const g = r - q;
      rgba[i] = max(0, 255 * min(1, r));
      rgba[i + 1] = max(0, 255 * min(1, g));
      rgba[i + 2] = max(0, 255 * min(1, b));
      rgba[i + 3] = max(0, 255 * min(1, a));
    }
  }
  return { w, h, rgba };
}

function thumbHashAspectRatio(hash) {
  const header = hash[3];
  const hasAlpha = hash[2] & 0x80;
  const isLandscape = hash[4] & 0x80;
  const lx = isLandscape ? (hasAlpha ? 5 : 7) : header & 7;
  const ly = isLandscape ? header & 7 : hasAlpha ? 5 : 7;
  return lx / ly;
}

// CSS `background-image` for a base64 ThumbHash: a data URL of the decoded picture ("none" when
// there is no hash, or nothing to draw with, as when prerendering).
function thumbHashBackground(base64) {
  if (!base64 || typeof document === "undefined") return "none";
  let css = thumbHashPlaceholders.get(base64);
  if (css === undefined) {
    try {
      const { w, h, rgba } = thumbHashToRGBA(Uint8Array.from(atob(base64), (c) => c.charCodeAt(0)));
      const canvas = document.createElement("canvas");
      canvas.width = w;
      canvas.height = h;
      canvas.getContext("2d").putImageData(new ImageData(rgba, w, h), 0, 0);
      css = `url(${canvas.toDataURL()})`;
    } catch (error) {
      css = "none"; // a malformed hash: no placeholder, never a broken card
    }
    thumbHashPlaceholders.set(base64, css);
  }
  return css;
}

// Once the image itself is drawn, its placeholder goes (it would show through transparent pixels).
function dropPlaceholder(event) {
  event.target.style.backgroundImage = "none";
}

// The lightbox: the 768-px copy shows at once; the original replaces it once it has loaded.
function swapToOriginal(event) {
  const img = event.target;
  const original = img.dataset.original;
  dropPlaceholder(event);
  if (!original || img.dataset.swapping) return;
  img.dataset.swapping = "1";
  const full = new Image();
  full.onload = () => {
    if (img.dataset.original === original) img.src = original;
  };
  full.src = original;
}

// Shared through the page's global scope: Reflex puts this code in whichever modules hold an
// image, and a component compiled into another module (the lightbox, a memoised card) calls
// these by name, so they are looked up on `globalThis` (`images.py`).
Object.assign(globalThis, { thumbHashBackground, dropPlaceholder, swapToOriginal });
