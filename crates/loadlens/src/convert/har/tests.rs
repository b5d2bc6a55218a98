use super::*;

fn entry(
    started: &str,
    time: f64,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    post: Option<(&str, &str)>,
    mime: &str,
) -> serde_json::Value {
    serde_json::json!({
        "startedDateTime": started,
        "time": time,
        "request": {
            "method": method,
            "url": url,
            "httpVersion": "HTTP/1.1",
            "headers": headers.iter().map(|(n, v)| serde_json::json!({"name": n, "value": v})).collect::<Vec<_>>(),
            "queryString": [],
            "cookies": [],
            "headersSize": -1,
            "bodySize": 0,
            "postData": post.map(|(m, t)| serde_json::json!({"mimeType": m, "text": t})),
        },
        "response": {"status": 200, "content": {"size": 0, "mimeType": mime}},
        "timings": {"send": 0, "wait": time, "receive": 0},
    })
}

fn har(entries: Vec<serde_json::Value>) -> Vec<Entry> {
    let doc = serde_json::json!({"log": {"version": "1.2", "creator": {"name": "t", "version": "1"}, "entries": entries}});
    serde_json::from_value::<Har>(doc).unwrap().log.entries
}

fn convert_text(entries: Vec<serde_json::Value>, args: &HarArgs) -> Result<String, String> {
    let d = to_draft(har(entries), args, "rec.har", "rec".into())?;
    let text = d.to_yaml();
    crate::convert::check(&text, "rec.yaml", None).map_err(|e| format!("{e}\n{text}"))?;
    Ok(text)
}

fn args() -> HarArgs {
    HarArgs {
        min_think: Duration::from_millis(100),
        ..HarArgs::default()
    }
}

fn browse() -> Vec<serde_json::Value> {
    let chrome = [
        ("Accept", "application/json"),
        ("Cookie", "session=abc"),
        ("User-Agent", "Mozilla/5.0"),
        ("sec-ch-ua", "\"Chromium\""),
        ("Sec-Fetch-Mode", "cors"),
        ("Accept-Encoding", "gzip, br"),
        (":authority", "shop.test"),
    ];
    vec![
        entry(
            "2024-05-01T10:00:00.000Z",
            50.0,
            "GET",
            "https://shop.test/",
            &[("Accept", "text/html")],
            None,
            "text/html",
        ),
        entry(
            "2024-05-01T10:00:00.060Z",
            10.0,
            "GET",
            "https://shop.test/app.css?v=3",
            &[],
            None,
            "text/css",
        ),
        entry(
            "2024-05-01T10:00:00.070Z",
            10.0,
            "GET",
            "https://shop.test/logo",
            &[],
            None,
            "image/png",
        ),
        entry(
            "2024-05-01T10:00:00.080Z",
            10.0,
            "GET",
            "https://www.google-analytics.com/collect?v=1",
            &[],
            None,
            "text/plain",
        ),
        entry(
            "2024-05-01T10:00:02.000Z",
            30.0,
            "GET",
            "https://shop.test/api/products?category=shoes&page=2&limit=24",
            &chrome,
            None,
            "application/json",
        ),
        entry(
            "2024-05-01T10:00:02.035Z",
            5.0,
            "OPTIONS",
            "https://shop.test/api/cart",
            &[("Access-Control-Request-Method", "POST")],
            None,
            "",
        ),
        // Firefox writes local times with an offset: 12:00:03.5+02:00 is 10:00:03.5Z.
        entry(
            "2024-05-01T12:00:03.500+02:00",
            20.0,
            "POST",
            "https://shop.test/api/cart",
            &[("Content-Type", "application/json"), ("X-Csrf", "t1")],
            Some(("application/json", r#"{"productId": 42, "note": "{{x}}"}"#)),
            "application/json",
        ),
        entry(
            "2024-05-01T10:00:03.530Z",
            20.0,
            "POST",
            "https://shop.test/login",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            Some(("application/x-www-form-urlencoded", "user=a%40b&pass=x+y")),
            "text/html",
        ),
        entry(
            "2024-05-01T10:00:03.600Z",
            20.0,
            "GET",
            "https://shop.test/search?tag=a&tag=b",
            &[],
            None,
            "text/html",
        ),
        {
            let mut cached = entry(
                "2024-05-01T10:00:03.610Z",
                0.0,
                "GET",
                "https://shop.test/api/config",
                &[],
                None,
                "application/json",
            );
            cached["_fromCache"] = "disk".into();
            cached
        },
    ]
}

#[test]
fn a_browse_becomes_a_flow_without_assets_third_parties_or_browser_headers() {
    let text = convert_text(browse(), &args()).unwrap();
    assert!(text.contains("host: https://shop.test\n"), "{text}");
    let paths: Vec<&str> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("path: "))
        .collect();
    assert_eq!(
        paths,
        [
            "/",
            "/api/products",
            "/api/cart",
            "/login",
            "/search?tag=a&tag=b"
        ],
        "{text}"
    );
    // Query parameters in the recorded order.
    let at = |s: &str| text.find(s).unwrap_or_else(|| panic!("{s} in {text}"));
    assert!(at("category: shoes") < at("page: \"2\"") && at("page: \"2\"") < at("limit: \"24\""));
    let body = &text[text.find("\nname:").unwrap()..];
    for gone in [
        "Cookie",
        "User-Agent",
        "sec-ch-ua",
        "Sec-Fetch",
        "Accept-Encoding",
        ":authority",
        "google-analytics",
        "app.css",
        "OPTIONS",
        "Content-Type",
    ] {
        assert!(!body.contains(gone), "{gone} in {text}");
    }
    assert!(text.contains("X-Csrf: t1"), "{text}");
    // Bodies: JSON (its `{{` sent as recorded) and a form, decoded.
    assert!(
        text.contains("productId: 42") && text.contains("random_choice({{)"),
        "{text}"
    );
    assert!(
        text.contains("user: a@b") && text.contains("pass: x y"),
        "{text}"
    );
    // Think times: 1950 ms after the page (2.000 - 0.050), 1470 ms before the cart (3.500 - 2.030);
    // 10 ms gaps are below --min-think.
    let thinks: Vec<&str> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- think: "))
        .collect();
    assert_eq!(thinks, ["1950ms", "1470ms"], "{text}");
    assert!(text.contains("Left out: 2 static assets (--keep-static keeps them), 1 to other origins, 1 CORS preflights, 1 served from the browser's cache."), "{text}");
    assert!(text.contains("https://www.google-analytics.com"), "{text}");
}

#[test]
fn filters_and_flags_change_what_is_kept() {
    let all = HarArgs {
        all_origins: true,
        keep_static: true,
        no_think: true,
        keep_header: vec!["user-agent".into()],
        ..args()
    };
    let text = convert_text(browse(), &all).unwrap();
    assert!(
        text.contains("path: https://www.google-analytics.com/collect"),
        "{text}"
    );
    assert!(
        text.contains("path: /app.css") && text.contains("v: \"3\""),
        "{text}"
    );
    assert!(
        !text.contains("think:") && text.contains("User-Agent: Mozilla/5.0"),
        "{text}"
    );

    let only_api = HarArgs {
        include: vec!["/api/".into()],
        exclude: vec!["cart".into()],
        host: Some("http://127.0.0.1:8080/".into()),
        ..args()
    };
    let text = convert_text(browse(), &only_api).unwrap();
    assert!(text.contains("host: http://127.0.0.1:8080\n"), "{text}");
    let paths: Vec<&str> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("path: "))
        .collect();
    assert_eq!(paths, ["/api/products"], "{text}");

    let e = convert_text(
        browse(),
        &HarArgs {
            include: vec!["nothing-matches".into()],
            ..args()
        },
    )
    .unwrap_err();
    assert!(
        e.contains("no request left") && e.contains("not matching --include"),
        "{e}"
    );
    let e = convert_text(
        browse(),
        &HarArgs {
            exclude: vec!["(".into()],
            ..args()
        },
    )
    .unwrap_err();
    assert!(e.contains("--exclude ("), "{e}");
    let text = convert_text(
        browse(),
        &HarArgs {
            max_think: Some(Duration::from_millis(500)),
            ..args()
        },
    )
    .unwrap();
    assert_eq!(text.matches("- think: 500ms").count(), 2, "{text}");
}

#[test]
fn errors_name_the_file_and_the_place() {
    let e = serde_json::from_str::<Har>("{\"log\": {\n \"entries\": [{}]}}")
        .err()
        .unwrap();
    assert!(e.to_string().contains("startedDateTime"), "{e}");
    let e = to_draft(
        har(vec![entry(
            "yesterday",
            1.0,
            "GET",
            "http://h/",
            &[],
            None,
            "",
        )]),
        &args(),
        "x.har",
        "x".into(),
    )
    .unwrap_err();
    assert_eq!(
        e,
        "x.har: log.entries[0].startedDateTime: not an ISO 8601 time"
    );
    assert_eq!(
        millis("2024-05-01T12:00:00.250+02:00"),
        millis("2024-05-01T10:00:00.250Z")
    );
    assert_eq!(
        millis("2024-05-01T05:00:00-05:00"),
        millis("2024-05-01T10:00:00Z")
    );
}

#[test]
fn bodies_without_json_or_form_keep_their_type_and_params_make_a_form() {
    let multipart = "--b1\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--b1--\r\n";
    let mut params_only = entry(
        "2024-05-01T10:00:01.000Z",
        5.0,
        "POST",
        "https://shop.test/f",
        &[],
        None,
        "text/html",
    );
    params_only["request"]["postData"] = serde_json::json!({
        "mimeType": "application/x-www-form-urlencoded",
        "params": [{"name": "q", "value": "x y"}, {"name": "n", "value": "1"}]
    });
    let text = convert_text(
        vec![
            entry(
                "2024-05-01T10:00:00.000Z",
                5.0,
                "POST",
                "https://shop.test/up",
                &[("Content-Type", "multipart/form-data; boundary=b1")],
                Some(("multipart/form-data; boundary=b1", multipart)),
                "text/html",
            ),
            params_only,
        ],
        &args(),
    )
    .unwrap();
    assert!(
        text.contains("Content-Type: multipart/form-data; boundary=b1"),
        "{text}"
    );
    assert!(
        text.contains(
            r#"body: "--b1\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--b1--\r\n""#
        ),
        "{text}"
    );
    assert!(
        text.contains("form:\n                q: x y\n                \"n\": \"1\""),
        "{text}"
    );
}
