// Renders /api/openapi.json with Redoc (served beside this file, no CDN). A missing or broken
// document shows an error on the page (and data-state="error" on #redoc) instead of a blank page.
(function () {
  var SPEC = '/api/openapi.json';
  var root = document.getElementById('redoc');
  function fail(message) {
    root.setAttribute('data-state', 'error');
    root.textContent = '';
    var note = document.createElement('p');
    note.className = 'apidocs-error';
    note.textContent = 'The API reference cannot be shown: ' + message;
    root.appendChild(note);
  }
  fetch(SPEC, { headers: { Accept: 'application/json' } })
    .then(function (response) {
      if (!response.ok) throw new Error(SPEC + ' answered ' + response.status);
      return response.json();
    })
    .then(function (spec) {
      root.setAttribute('data-state', 'loading');
      window.Redoc.init(
        spec,
        { hideDownloadButton: false, expandResponses: '200,201', jsonSampleExpandLevel: 2 },
        root,
        function (error) {
          if (error) fail(String(error.message || error));
          else root.setAttribute('data-state', 'rendered');
        }
      );
    })
    .catch(function (error) {
      fail(String(error.message || error));
    });
})();
