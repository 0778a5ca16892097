// pymdownx.arithmatex (generic mode) leaves math as \( \) and \[ \] in elements of class
// "arithmatex"; KaTeX's auto-render typesets them, from the vendored copy in docs/katex.
function renderMath() {
  for (const el of document.querySelectorAll(".arithmatex")) {
    renderMathInElement(el, {
      delimiters: [
        {left: "\\(", right: "\\)", display: false},
        {left: "\\[", right: "\\]", display: true},
      ],
      throwOnError: false,
    });
  }
}
if (typeof document$ !== "undefined") {
  document$.subscribe(renderMath);  // Material's page-load observable
} else {
  document.addEventListener("DOMContentLoaded", renderMath);
}
