//! The dashboard's files, embedded in the binary so the page works with no internet
//! (`web/`; the charting library is vendored from npm by `scripts/build-web.sh`).

use std::sync::Arc;

use axum::Router;
use axum::http::header;
use axum::routing::get;

use super::AppState;

const FILES: [(&str, &str, &str); 5] = [
    (
        "/",
        "text/html; charset=utf-8",
        include_str!("../../web/index.html"),
    ),
    (
        "/app.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/app.js"),
    ),
    (
        "/style.css",
        "text/css; charset=utf-8",
        include_str!("../../web/style.css"),
    ),
    (
        "/vendor/lightweight-charts.standalone.production.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/vendor/lightweight-charts.standalone.production.js"),
    ),
    (
        "/vendor/LICENSE",
        "text/plain; charset=utf-8",
        include_str!("../../web/vendor/LICENSE"),
    ),
];

pub fn routes() -> Router<Arc<AppState>> {
    FILES
        .iter()
        .fold(Router::new(), |router, &(path, content_type, body)| {
            router.route(
                path,
                get(move || async move { ([(header::CONTENT_TYPE, content_type)], body) }),
            )
        })
}
