//! The meeting app's files as a browser fetches them from `moim serve`: the
//! page at `/` and at a room's link, its hashed assets cached for a year,
//! every answer with a Content-Security-Policy; and, when nobody built the
//! app, a page that says how.

use std::path::Path;

use moim_app::meet::{router, MeetFiles};

async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

fn built_app(dir: &Path) {
    std::fs::create_dir_all(dir.join("assets")).expect("mkdir");
    std::fs::write(
        dir.join("index.html"),
        "<!doctype html><script type=module src=/assets/index-abc123.js></script>",
    )
    .expect("index");
    std::fs::write(dir.join("assets/index-abc123.js"), "console.log(1)").expect("asset");
}

#[tokio::test]
async fn a_browser_gets_the_page_at_home_and_at_a_room_link_and_caches_only_the_assets() {
    let dir = tempfile::tempdir().expect("tempdir");
    built_app(dir.path());
    let missing = dir.path().join("not-here");
    let files = MeetFiles::find(&[missing, dir.path().to_path_buf()]).expect("found");
    assert_eq!(files.dir(), dir.path());
    let base = serve(router(
        Ok(files),
        "http://127.0.0.1:7880",
        "http://127.0.0.1:7880",
    ))
    .await;

    for path in ["/", "/r/abc-defg-hij"] {
        let res = reqwest::get(format!("{base}{path}")).await.expect("GET");
        assert_eq!(res.status(), 200, "{path}");
        let h = res.headers().clone();
        assert_eq!(
            h["cache-control"], "no-cache",
            "{path}: the page names this build's assets"
        );
        let csp = h["content-security-policy"].to_str().expect("csp");
        assert!(csp.contains("script-src 'self'"), "{csp}");
        assert!(
            csp.contains("connect-src 'self' ws://127.0.0.1:7880"),
            "{csp}"
        );
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert!(res.text().await.expect("body").contains("index-abc123.js"));
    }

    let asset = reqwest::get(format!("{base}/assets/index-abc123.js"))
        .await
        .expect("GET");
    assert_eq!(asset.status(), 200);
    assert_eq!(
        asset.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    assert!(asset.headers()["content-type"]
        .to_str()
        .expect("type")
        .contains("javascript"));

    let gone = reqwest::get(format!("{base}/assets/index-old.js"))
        .await
        .expect("GET");
    assert_eq!(
        gone.status(),
        404,
        "a stale asset is not answered with the page"
    );
    let escape = reqwest::get(format!("{base}/assets/../index.html"))
        .await
        .expect("GET");
    assert_ne!(escape.status(), 500);
}

#[tokio::test]
async fn without_a_build_home_says_how_to_make_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let looked = dir.path().join("dist");
    let found = MeetFiles::find(std::slice::from_ref(&looked));
    let err = found.as_ref().expect_err("nothing built").to_string();
    assert!(err.contains("scripts/build-meet.sh"), "{err}");
    assert!(
        err.contains(&looked.display().to_string()),
        "names where it looked: {err}"
    );
    let base = serve(router(
        found,
        "https://meet.example.com",
        "https://meet.example.com",
    ))
    .await;
    let res = reqwest::get(format!("{base}/")).await.expect("GET");
    assert_eq!(res.status(), 503);
    let csp = res.headers()["content-security-policy"]
        .to_str()
        .expect("csp")
        .to_string();
    assert!(csp.contains("wss://meet.example.com"), "{csp}");
    let body = res.text().await.expect("body");
    assert!(body.contains("moim meet is not built"), "{body}");
    assert!(body.contains("scripts/build-meet.sh"), "{body}");
}
