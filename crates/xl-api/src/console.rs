//! The duty console: static files (`crates/xl-api/console/`) embedded in the binary and served
//! at `/` and `/console/...`. Plain HTML, CSS and ES modules, no build step; the page talks to
//! the JSON API on the same origin, so it needs nothing from the CSP beyond `'self'` (no inline
//! script or style, no CDN; live video's WebSocket is same-origin, which `'self'` allows), and
//! `blob:` in `media-src` for the Media Source Extensions player (player.js). The files hold no data: merge this router outside the login check,
//! the page itself asks for a login when the API answers 401.

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// One embedded file.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

static ASSETS: &[Asset] = &[
    Asset {
        path: "/",
        content_type: HTML,
        body: include_str!("../console/index.html"),
    },
    Asset {
        path: "/console/",
        content_type: HTML,
        body: include_str!("../console/index.html"),
    },
    Asset {
        path: "/console/app.js",
        content_type: JS,
        body: include_str!("../console/app.js"),
    },
    Asset {
        path: "/console/i18n.js",
        content_type: JS,
        body: include_str!("../console/i18n.js"),
    },
    Asset {
        path: "/console/ui.js",
        content_type: JS,
        body: include_str!("../console/ui.js"),
    },
    Asset {
        path: "/console/topology.js",
        content_type: JS,
        body: include_str!("../console/topology.js"),
    },
    Asset {
        path: "/console/alert-text.js",
        content_type: JS,
        body: include_str!("../console/alert-text.js"),
    },
    Asset {
        path: "/console/admin.js",
        content_type: JS,
        body: include_str!("../console/admin.js"),
    },
    Asset {
        path: "/console/zones.js",
        content_type: JS,
        body: include_str!("../console/zones.js"),
    },
    Asset {
        path: "/console/wall.js",
        content_type: JS,
        body: include_str!("../console/wall.js"),
    },
    Asset {
        path: "/console/player.js",
        content_type: JS,
        body: include_str!("../console/player.js"),
    },
    Asset {
        path: "/console/playback.js",
        content_type: JS,
        body: include_str!("../console/playback.js"),
    },
    Asset {
        path: "/console/style.css",
        content_type: CSS,
        body: include_str!("../console/style.css"),
    },
];

/// The console's routes, one per embedded file (GET and HEAD).
pub(crate) fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    ASSETS.iter().fold(Router::new(), |router, asset| {
        router.route(asset.path, get(move || async move { serve(asset) }))
    })
}

fn serve(asset: &'static Asset) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(asset.content_type),
        )],
        asset.body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::{Body, to_bytes};
    use axum::http::{Method, Request, StatusCode};
    use tower::ServiceExt;

    async fn fetch(method: Method, path: &str) -> (StatusCode, String, Vec<u8>) {
        let resp = router::<()>()
            .oneshot(
                Request::builder()
                    .method(method)
                    .uri(path)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        let status = resp.status();
        let ct = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let body = to_bytes(resp.into_body(), 1 << 22).await.unwrap().to_vec();
        (status, ct, body)
    }

    #[tokio::test]
    async fn serves_every_file_with_its_content_type() {
        for (path, ct, needle) in [
            (
                "/",
                "text/html; charset=utf-8",
                "data-testid=\"login-form\"",
            ),
            ("/console/", "text/html; charset=utf-8", "<!doctype html>"),
            (
                "/console/app.js",
                "text/javascript; charset=utf-8",
                "EventSource",
            ),
            (
                "/console/i18n.js",
                "text/javascript; charset=utf-8",
                "已确认",
            ),
            (
                "/console/alert-text.js",
                "text/javascript; charset=utf-8",
                "foldHistory",
            ),
            (
                "/console/wall.js",
                "text/javascript; charset=utf-8",
                "LivePlayer",
            ),
            (
                "/console/player.js",
                "text/javascript; charset=utf-8",
                "MediaSource",
            ),
            (
                "/console/playback.js",
                "text/javascript; charset=utf-8",
                "recording.mp4",
            ),
            (
                "/console/style.css",
                "text/css; charset=utf-8",
                ".alert-row",
            ),
        ] {
            let (status, got_ct, body) = fetch(Method::GET, path).await;
            assert_eq!(status, StatusCode::OK, "{path}");
            assert_eq!(got_ct, ct, "{path}");
            let text = String::from_utf8(body).expect("utf-8");
            assert!(text.contains(needle), "{path} lacks {needle:?}");
        }
    }

    #[tokio::test]
    async fn head_answers_without_a_body() {
        let (status, ct, body) = fetch(Method::HEAD, "/console/app.js").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(ct, JS);
        assert!(body.is_empty());
    }

    #[tokio::test]
    async fn unknown_files_are_not_found() {
        for path in [
            "/console/nope.js",
            "/console/../Cargo.toml",
            "/console/app.js/x",
        ] {
            let (status, _, _) = fetch(Method::GET, path).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        }
        let (status, _, _) = fetch(Method::POST, "/").await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    }

    /// Every local file the page and its modules refer to is served, and nothing needs more
    /// from the CSP than 'self': no inline script, style attribute or handler, no other origin.
    #[test]
    fn page_is_self_contained_and_csp_clean() {
        let served: Vec<&str> = ASSETS.iter().map(|a| a.path).collect();
        let index = ASSETS[0].body;
        for reference in index
            .split(['"', '\''])
            .filter(|s| s.starts_with("/console/"))
        {
            assert!(
                served.contains(&reference),
                "index.html refers to unserved {reference}"
            );
        }
        for asset in ASSETS {
            for import in asset
                .body
                .lines()
                .filter(|l| l.trim_start().starts_with("import "))
            {
                let file = import
                    .split(['"', '\''])
                    .nth(1)
                    .and_then(|s| s.strip_prefix("./"))
                    .expect("relative import");
                let path = format!("/console/{file}");
                assert!(
                    served.contains(&path.as_str()),
                    "{} imports unserved {path}",
                    asset.path
                );
            }
            if asset.content_type == HTML {
                assert!(!asset.body.contains("<script>"), "inline script");
                assert!(!asset.body.contains(" style="), "style attribute");
                assert!(!asset.body.contains("<style"), "style element");
                assert!(!asset.body.contains(" onclick="), "inline handler");
            }
            // The SVG namespace is a name, not a fetch.
            let body = asset.body.replace("http://www.w3.org/2000/svg", "");
            for outside in ["http://", "https://", "//cdn", "fonts.googleapis"] {
                assert!(
                    !body.contains(outside),
                    "{} refers to another origin ({outside})",
                    asset.path
                );
            }
        }
    }
}
