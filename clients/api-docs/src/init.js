// Starts Swagger UI on the hub's OpenAPI document (a file of its own: the page's
// Content-Security-Policy allows no inline script). "openapi.json" is relative to the
// page, /api/docs, so it is /api/openapi.json on this hub. No validator badge: it would
// send the document to a third-party service.
window.addEventListener('load', function () {
  window.ui = window.SwaggerUIBundle({
    url: new URL('openapi.json', document.baseURI).href,
    dom_id: '#swagger-ui',
    deepLinking: true,
    validatorUrl: null,
  });
});
