//! Demo chat page and JS SDK, embedded in the binary at compile time.
//!
//! The files live in `clients/js/` and are served as they are: the page
//! (`clients/js/demo/`) is plain HTML, CSS and ES modules with no build step,
//! and it imports the SDK sources (`clients/js/src/`) through `/sdk/<file>.js`.
//! The path is matched against a fixed list, so nothing outside it can be
//! served (no directory traversal).

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// Returns (content-type, body) for a path like "/", "/index.html", "/app.js", "/style.css", "/sdk/client.js".
/// Every file of `clients/js/src/` is listed (a JS unit test checks the list).
pub fn asset(path: &str) -> Option<(&'static str, &'static [u8])> {
    let asset: (&'static str, &'static [u8]) = match path {
        "/" | "/index.html" => (
            HTML,
            include_bytes!("../../../../clients/js/demo/index.html"),
        ),
        "/app.js" => (JS, include_bytes!("../../../../clients/js/demo/app.js")),
        "/style.css" => (CSS, include_bytes!("../../../../clients/js/demo/style.css")),
        "/sdk/index.js" => (JS, include_bytes!("../../../../clients/js/src/index.js")),
        "/sdk/client.js" => (JS, include_bytes!("../../../../clients/js/src/client.js")),
        "/sdk/backoff.js" => (JS, include_bytes!("../../../../clients/js/src/backoff.js")),
        "/sdk/codec.js" => (JS, include_bytes!("../../../../clients/js/src/codec.js")),
        "/sdk/connection.js" => (
            JS,
            include_bytes!("../../../../clients/js/src/connection.js"),
        ),
        "/sdk/dedupe.js" => (JS, include_bytes!("../../../../clients/js/src/dedupe.js")),
        "/sdk/direct.js" => (JS, include_bytes!("../../../../clients/js/src/direct.js")),
        "/sdk/emitter.js" => (JS, include_bytes!("../../../../clients/js/src/emitter.js")),
        "/sdk/errors.js" => (JS, include_bytes!("../../../../clients/js/src/errors.js")),
        "/sdk/heartbeat.js" => (
            JS,
            include_bytes!("../../../../clients/js/src/heartbeat.js"),
        ),
        "/sdk/queue.js" => (JS, include_bytes!("../../../../clients/js/src/queue.js")),
        "/sdk/requests.js" => (JS, include_bytes!("../../../../clients/js/src/requests.js")),
        "/sdk/rooms.js" => (JS, include_bytes!("../../../../clients/js/src/rooms.js")),
        "/sdk/token.js" => (JS, include_bytes!("../../../../clients/js/src/token.js")),
        "/sdk/types.js" => (JS, include_bytes!("../../../../clients/js/src/types.js")),
        "/sdk/util.js" => (JS, include_bytes!("../../../../clients/js/src/util.js")),
        _ => return None,
    };
    Some(asset)
}

#[cfg(test)]
mod tests {
    use super::asset;

    #[test]
    fn root_and_index_are_the_page() {
        let (ty, body) = asset("/").expect("the page");
        assert_eq!(ty, "text/html; charset=utf-8");
        assert!(String::from_utf8_lossy(body).contains("<html"));
        assert_eq!(asset("/index.html"), Some((ty, body)));
    }

    #[test]
    fn scripts_and_styles_have_their_types() {
        assert_eq!(
            asset("/app.js").map(|a| a.0),
            Some("text/javascript; charset=utf-8")
        );
        assert_eq!(
            asset("/style.css").map(|a| a.0),
            Some("text/css; charset=utf-8")
        );
        let (ty, body) = asset("/sdk/client.js").expect("the SDK");
        assert_eq!(ty, "text/javascript; charset=utf-8");
        assert!(String::from_utf8_lossy(body).contains("export class WsgateClient"));
    }

    #[test]
    fn every_sdk_import_is_served() {
        // The page loads the SDK through relative imports between its files:
        // each `from './x.js'` in an embedded SDK file must be embedded too.
        for file in [
            "index",
            "client",
            "backoff",
            "codec",
            "connection",
            "dedupe",
            "direct",
            "emitter",
            "errors",
            "heartbeat",
            "queue",
            "requests",
            "rooms",
            "token",
            "types",
            "util",
        ] {
            let (_, body) = asset(&format!("/sdk/{file}.js")).expect("embedded");
            let text = String::from_utf8_lossy(body);
            for import in text.split("from './").skip(1) {
                let name = import.split('\'').next().unwrap_or_default();
                assert!(
                    asset(&format!("/sdk/{name}")).is_some(),
                    "/sdk/{name} missing"
                );
            }
        }
    }

    #[test]
    fn unknown_paths_are_none() {
        for path in [
            "/nope",
            "/sdk/",
            "/sdk/../../Cargo.toml",
            "/../Cargo.toml",
            "/index.html/",
            "/APP.JS",
            "",
            "/ws",
            "/healthz",
        ] {
            assert_eq!(asset(path), None, "{path}");
        }
    }
}
