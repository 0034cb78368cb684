// Search for the reference page (SpectaQL has none): a box above the menu that finds operations,
// types, their fields and the examples by name, then by description, and links to each.
// Runs on the rendered page alone (no index file, no request) under the page's strict CSP: no
// inline style or script, results are built with DOM methods.
function docsSearch() {
  var KINDS = [
    ['query-', 'Query'],
    ['mutation-', 'Mutation'],
    ['subscription-', 'Subscription'],
    ['definition-', 'Type'],
    ['introduction-item-', 'Guide'],
  ];
  var LIMIT = 30;

  function kindOf(id) {
    for (var i = 0; i < KINDS.length; i++) if (id.indexOf(KINDS[i][0]) === 0) return KINDS[i][1];
    return null;
  }

  // one entry per section, and one per field or argument of it (found under its section's anchor)
  var entries = [];
  Array.prototype.forEach.call(document.querySelectorAll('#docs [data-traverse-target]'), function (section) {
    var kind = kindOf(section.id);
    if (!kind) return;
    var heading = section.querySelector('h2, h3');
    var name = heading ? heading.textContent.trim() : section.id;
    entries.push({ id: section.id, name: name, kind: kind, text: section.textContent.toLowerCase() });
    if (kind !== 'Type') return;
    Array.prototype.forEach.call(section.querySelectorAll('.property-name code'), function (code) {
      var row = code.closest('tr');
      var argument = code.closest('.field-argument');
      var entry = { id: section.id, name: name + '.' + code.textContent.trim(), kind: 'Field' };
      if (argument) {
        // an argument's row follows its field's row: "Article.comments(first)"
        var field = row && row.previousElementSibling && row.previousElementSibling.querySelector('.property-name code');
        entry.name = name + '.' + (field ? field.textContent.trim() : '') + '(' + code.textContent.trim() + ')';
        entry.kind = 'Argument';
      }
      entry.text = (argument || row || code).textContent.toLowerCase();
      entries.push(entry);
    });
  });

  // 0: the name itself, 1: a name starting with it, 2: a name containing it, 3: the text only
  function rank(entry, query) {
    var name = entry.name.toLowerCase();
    var last = name.slice(name.lastIndexOf('.') + 1);
    if (name === query || last === query) return 0;
    if (name.indexOf(query) === 0 || last.indexOf(query) === 0) return 1;
    if (name.indexOf(query) >= 0) return 2;
    if (entry.text.indexOf(query) >= 0) return 3;
    return -1;
  }

  // first in the menu, which stays in view (sticky) as the page scrolls
  var nav = document.getElementById('nav');
  var box = document.createElement('div');
  box.id = 'docs-search';
  box.setAttribute('role', 'search');
  var input = document.createElement('input');
  input.id = 'docs-search-input';
  input.type = 'search';
  input.placeholder = 'Search (press /)';
  input.autocomplete = 'off';
  input.setAttribute('aria-label', 'Search the reference');
  var results = document.createElement('ul');
  results.id = 'docs-search-results';
  results.hidden = true;
  box.appendChild(input);
  box.appendChild(results);
  nav.insertBefore(box, nav.firstChild);

  function show() {
    var query = input.value.trim().toLowerCase();
    while (results.firstChild) results.removeChild(results.firstChild);
    results.hidden = query === '';
    nav.classList.toggle('docs-searching', query !== '');
    if (!query) return;
    var found = [];
    entries.forEach(function (entry, order) {
      var r = rank(entry, query);
      if (r >= 0) found.push({ entry: entry, rank: r, order: order });
    });
    found.sort(function (a, b) {
      return a.rank - b.rank || a.order - b.order;
    });
    if (!found.length) {
      var none = document.createElement('li');
      none.className = 'docs-search-none';
      none.textContent = 'Nothing matches “' + input.value.trim() + '”';
      results.appendChild(none);
      return;
    }
    found.slice(0, LIMIT).forEach(function (hit) {
      var item = document.createElement('li');
      var link = document.createElement('a');
      link.href = '#' + hit.entry.id;
      link.setAttribute('data-traverse-ignore', '');
      var name = document.createElement('code');
      name.textContent = hit.entry.name;
      var kind = document.createElement('span');
      kind.className = 'docs-search-kind';
      kind.textContent = hit.entry.kind;
      link.appendChild(name);
      link.appendChild(kind);
      item.appendChild(link);
      results.appendChild(item);
    });
  }

  input.addEventListener('input', show);
  input.addEventListener('keydown', function (event) {
    var first = results.querySelector('a');
    if (event.key === 'Enter' && first) first.click();
    if (event.key === 'Escape') {
      input.value = '';
      show();
    }
  });
  document.addEventListener('keydown', function (event) {
    if (event.key === '/' && document.activeElement !== input) {
      event.preventDefault();
      input.focus();
    }
  });
}

window.addEventListener('DOMContentLoaded', docsSearch);
