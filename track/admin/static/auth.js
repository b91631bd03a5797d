// The admin token (--admin-token): asked for once, when the listener first
// answers 401, and kept in this tab's sessionStorage (gone when the tab
// closes).  Every fetch of the page carries it as a bearer token.  Loaded
// before admin.js, and apart from it, so the page's own script stays as is.
(function () {
  "use strict";
  const KEY = "track-admin-token";
  const plainFetch = window.fetch.bind(window);
  let asking = null; // one question at a time, however many requests are refused
  let declined = false; // cancelled: ask again only after a reload

  function send(input, init) {
    const options = Object.assign({}, init || {});
    const token = sessionStorage.getItem(KEY);
    if (token) {
      const headers = new Headers(options.headers || {});
      headers.set("Authorization", "Bearer " + token);
      options.headers = headers;
    }
    return plainFetch(input, options);
  }

  function ask() {
    if (!asking) {
      asking = Promise.resolve().then(function () {
        const entered = window.prompt("This admin page needs its token (--admin-token):");
        if (entered && entered.trim()) {
          sessionStorage.setItem(KEY, entered.trim());
          return true;
        }
        declined = true;
        return false;
      }).finally(function () { asking = null; });
    }
    return asking;
  }

  window.fetch = async function (input, init) {
    const response = await send(input, init);
    if (response.status !== 401 || declined) {
      return response;
    }
    sessionStorage.removeItem(KEY);
    return (await ask()) ? send(input, init) : response;
  };
})();
