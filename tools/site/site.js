// The search box (over search-index.js), "/" to focus it, and folded source opened when a link points into it.
const box = document.getElementById("search"), results = document.getElementById("search-results");
const norm = s => s.toLowerCase();
function score(entry, words) {
  const title = norm(entry.title), text = norm(entry.text + " " + entry.page);
  let total = 0;
  for (const word of words) {
    if (title === word) total += 10; else if (title.includes(word)) total += 4; else if (text.includes(word)) total += 1;
    else return 0;
  }
  return total + (entry.api ? 1 : 0);
}
function search() {
  const words = norm(box.value).split(/\s+/).filter(Boolean);
  results.replaceChildren();
  if (!words.length) return;
  const hits = SEARCH_INDEX.map(entry => [score(entry, words), entry]).filter(([s]) => s > 0)
    .sort((a, b) => b[0] - a[0]).slice(0, 12);
  for (const [, entry] of hits) {
    const item = document.createElement("li"), link = document.createElement("a"), where = document.createElement("small");
    link.href = entry.url; link.textContent = entry.title; if (entry.api) link.className = "api";
    where.textContent = entry.page + (entry.text ? " · " + entry.text : "");
    link.append(where); item.append(link); results.append(item);
  }
  if (hits.length) results.querySelector("a").classList.add("first");
  else results.innerHTML = '<li class="none">No match</li>';
}
box.addEventListener("input", search);
box.addEventListener("keydown", event => {
  const first = results.querySelector("a");
  if (event.key === "Enter" && first) location.href = first.href;
  if (event.key === "Escape") { box.value = ""; search(); }
});
document.addEventListener("keydown", event => {
  if (event.key === "/" && document.activeElement !== box) { event.preventDefault(); box.focus(); }
});
function openTarget() {
  const target = location.hash && document.getElementById(decodeURIComponent(location.hash.slice(1)));
  const folded = target && target.closest("details");
  if (folded) { folded.open = true; target.closest("summary").scrollIntoView(); }
}
const asked = new URLSearchParams(location.search).get("q");  // e.g. index.html?q=bulk
if (asked) { box.value = asked; search(); }
addEventListener("hashchange", openTarget);
openTarget();
