// Fills in the checks list of index.html with what the browser made of the objects sitesync
// published: it runs only if the browser accepted this file as a module script, and each check
// passes only if its object came with the type (and, for checks.css, the encoding) it needs.

const check = (id, ok, value) => {
  const item = document.getElementById(id);
  item.dataset.state = ok ? "ok" : "failed";
  item.dataset.value = value;
  item.querySelector(".value").textContent = value;
};

check("check-module", true, "ran");

// Stylesheets apply once they loaded.
if (document.readyState !== "complete") {
  await new Promise((loaded) => addEventListener("load", loaded, { once: true }));
}
const heading = getComputedStyle(document.querySelector("h1")).color;
check("check-css", heading === "rgb(42, 93, 143)", heading);
const border = getComputedStyle(document.getElementById("checks")).borderLeftColor;
check("check-gzip-css", border === "rgb(0, 128, 0)", border);

try {
  // Compiles while it downloads, and only from a response typed application/wasm.
  const { instance } = await WebAssembly.instantiateStreaming(fetch("wasm/add.wasm"));
  const sum = instance.exports.add(2, 3);
  check("check-wasm", sum === 5, `add(2, 3) = ${sum}`);
} catch (e) {
  check("check-wasm", false, `${e.name}: ${e.message}`);
}
