// pymdownx.arithmatex (generic mode) wraps math in \( \) and \[ \]; MathJax 3 typesets it.
window.MathJax = {
  tex: {inlineMath: [["\\(", "\\)"]], displayMath: [["\\[", "\\]"]], processEscapes: true},
  options: {ignoreHtmlClass: ".*|", processHtmlClass: "arithmatex"},
};
