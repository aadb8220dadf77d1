"""Inline CSS and JavaScript of the HTML report (kept in Python so they ship inside the wheel)."""

CSS = """
:root { --ink:#1d2330; --muted:#5b6475; --line:#e3e7ee; --bg:#f6f7fb; --card:#fff; --accent:#2f5bea;
        --warn:#b45309; --warnbg:#fff7ed; --good:#15803d; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--ink); line-height:1.5;
       font: 15px/1.55 -apple-system, BlinkMacSystemFont, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
header.top { background:linear-gradient(120deg,#1e2a4a,#2f5bea); color:#fff; padding:28px 0 22px; }
header.top .wrap { display:flex; justify-content:space-between; align-items:flex-end; gap:24px; flex-wrap:wrap; }
header.top h1 { margin:0; font-size:26px; font-weight:650; letter-spacing:-0.01em; }
header.top .sub { opacity:.85; font-size:14px; margin-top:4px; }
header.top .meta { font-size:12.5px; opacity:.8; text-align:right; }
.wrap { max-width:1180px; margin:0 auto; padding:0 24px; }
.layout { display:grid; grid-template-columns: 210px minmax(0,1fr); gap:28px; margin-top:24px; }
nav.toc { position:sticky; top:16px; align-self:start; font-size:13.5px; }
nav.toc .label { text-transform:uppercase; letter-spacing:.06em; font-size:11px; color:var(--muted); margin-bottom:6px; }
nav.toc a { display:block; color:var(--ink); text-decoration:none; padding:3px 8px; border-left:2px solid var(--line); }
nav.toc a:hover { border-left-color:var(--accent); color:var(--accent); }
nav.toc a.sub { padding-left:20px; font-size:12.5px; color:var(--muted); }
main section { background:var(--card); border:1px solid var(--line); border-radius:10px; padding:20px 24px;
               margin-bottom:22px; box-shadow:0 1px 2px rgba(20,30,60,.04); }
h2 { font-size:19px; margin:0 0 12px; font-weight:650; }
h3 { font-size:15.5px; margin:22px 0 8px; font-weight:620; }
h4 { font-size:14px; margin:16px 0 6px; color:var(--muted); font-weight:600; }
p.lead { color:var(--muted); margin-top:-4px; }
.tiles { display:grid; grid-template-columns:repeat(auto-fill,minmax(200px,1fr)); gap:12px; margin:14px 0 4px; }
.tile { border:1px solid var(--line); border-radius:8px; padding:12px 14px; background:#fbfcff; }
.tile .k { font-size:11.5px; text-transform:uppercase; letter-spacing:.05em; color:var(--muted); }
.tile .v { font-size:21px; font-weight:650; margin:2px 0; }
.tile .d { font-size:12.5px; color:var(--muted); }
.tile.inconclusive .v { color:var(--muted); }
a.figlink { font-size:12px; color:var(--accent); white-space:nowrap; }
ul.findings li .ev { display:block; font-size:12.5px; color:var(--ink); }
ul.findings { padding-left:0; list-style:none; margin:8px 0 0; }
ul.findings li { padding:8px 0 8px 14px; border-left:3px solid var(--accent); margin:6px 0; background:#f8f9fe; }
ul.findings li b { font-weight:620; }
ul.findings li .d { display:block; color:var(--muted); font-size:13px; }
.warnings li { border-left-color:var(--warn) !important; background:var(--warnbg) !important; }
.ok { color:var(--good); }
figure { margin:14px 0 22px; }
figure img { max-width:100%; height:auto; display:block; border:1px solid var(--line); border-radius:6px; background:#fff; }
figure .tall { max-height:760px; overflow-y:auto; border:1px solid var(--line); border-radius:6px; }
figure .tall img { border:0; }
figcaption { font-size:13px; color:var(--muted); margin-top:6px; }
.figgrid { display:grid; grid-template-columns:repeat(auto-fill,minmax(420px,1fr)); gap:0 18px; }
details { margin:10px 0; }
details > summary { cursor:pointer; color:var(--accent); font-weight:560; padding:4px 0; }
.tablewrap { overflow-x:auto; max-height:520px; overflow-y:auto; border:1px solid var(--line); border-radius:6px; margin:6px 0 16px; }
table { border-collapse:collapse; font-size:12.5px; width:100%; font-variant-numeric:tabular-nums; }
th, td { padding:5px 9px; border-bottom:1px solid var(--line); text-align:right; white-space:nowrap; }
th:first-child, td:first-child { text-align:left; }
td.txt, th.txt { text-align:left; }
thead th { position:sticky; top:0; background:#eef1f8; cursor:pointer; user-select:none; font-weight:600; }
thead th:hover { background:#e2e7f5; }
thead th.asc::after { content:" \\25B2"; font-size:9px; } thead th.desc::after { content:" \\25BC"; font-size:9px; }
tbody tr:nth-child(even) { background:#fafbfe; }
tbody tr:hover { background:#eef3ff; }
tr.best td { font-weight:650; background:#eafaf0; }
code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size:12.5px; }
.kv { display:grid; grid-template-columns:max-content 1fr; gap:3px 16px; font-size:13.5px; }
.kv div:nth-child(odd) { color:var(--muted); }
.pill { display:inline-block; padding:1px 8px; border-radius:999px; background:#eef1f8; font-size:12px; margin:1px 3px 1px 0; }
footer { color:var(--muted); font-size:12px; text-align:center; padding:10px 0 40px; }
@media (max-width: 900px) { .layout { grid-template-columns:1fr; } nav.toc { position:static; } }
@media print { nav.toc { display:none; } .layout { display:block; } .tablewrap { max-height:none; } }
"""

# Sortable tables (click a header; numbers sort numerically) and the image-load count a browser check reads.
JS = """
(function () {
  function cellValue(td) {
    var t = td.getAttribute('data-v') || td.textContent.trim();
    var x = parseFloat(t);
    return (t !== '' && !isNaN(x) && isFinite(t.replace(/[%,]/g, '')) ) ? x : t.toLowerCase();
  }
  document.querySelectorAll('table.sortable').forEach(function (table) {
    table.querySelectorAll('thead th').forEach(function (th, col) {
      th.addEventListener('click', function () {
        var asc = !th.classList.contains('asc');
        table.querySelectorAll('thead th').forEach(function (h) { h.classList.remove('asc', 'desc'); });
        th.classList.add(asc ? 'asc' : 'desc');
        var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = cellValue(a.cells[col]), y = cellValue(b.cells[col]);
          if (typeof x === typeof y) { return (x < y ? -1 : x > y ? 1 : 0) * (asc ? 1 : -1); }
          return (typeof x === 'number' ? -1 : 1);
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  });
  function countImages() {
    var imgs = document.images, ok = 0;
    for (var i = 0; i < imgs.length; i++) { if (imgs[i].complete && imgs[i].naturalWidth > 0) { ok++; } }
    document.body.dataset.imagesLoaded = String(ok);
    document.body.dataset.imagesTotal = String(imgs.length);
    document.body.dataset.pageHeight = String(document.documentElement.scrollHeight);
  }
  countImages();
  Array.prototype.forEach.call(document.images, function (img) { img.addEventListener('load', countImages); });
  window.addEventListener('load', countImages);
})();
"""
