// /status follows new polls: it asks /status.json every two seconds and rewrites the table's rows.
// Values go in as text (textContent), never as markup.
(function () {
  "use strict";
  var body = document.querySelector("#status tbody");
  var updated = document.getElementById("updated");
  function row(source) {
    var tr = document.createElement("tr");
    tr.dataset.source = source.cells[0];
    tr.className = source.state;
    source.cells.forEach(function (text, i) {
      var td = document.createElement("td");
      if (i === 0) {
        var a = document.createElement("a");
        a.href = "/status/" + encodeURIComponent(text);
        a.textContent = text;
        td.appendChild(a);
      } else {
        td.textContent = text;
      }
      tr.appendChild(td);
    });
    return tr;
  }
  function refresh() {
    // A request that hangs (local mode stopped mid-answer) is given up after 5 s, so the page never stops following.
    var abort = new AbortController();
    var timer = setTimeout(function () { abort.abort(); }, 5000);
    fetch("/status.json", { cache: "no-store", signal: abort.signal })
      .then(function (r) { return r.json(); })
      .then(function (doc) {
        body.replaceChildren.apply(body, doc.sources.map(row));
        updated.textContent = "updated " + new Date().toLocaleTimeString();
      })
      .catch(function () { updated.textContent = "local mode is not answering"; })
      .finally(function () { clearTimeout(timer); setTimeout(refresh, 2000); });
  }
  setTimeout(refresh, 2000);
})();
