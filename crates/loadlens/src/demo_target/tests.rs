//! End-to-end tests of the demo target: real sockets on 127.0.0.1:0, raw HTTP/1.1 and HTTP/2 bytes
//! (this crate has no HTTP client).

use std::time::Instant;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

pub(super) struct Server {
    pub(super) addr: SocketAddr,
    pub(super) stop: CancellationToken,
    pub(super) task: tokio::task::JoinHandle<()>,
}

/// Starts a demo target and opens one keep-alive connection to it.
pub(super) async fn start(config: DemoConfig) -> (Server, Client) {
    let target = DemoTarget::bind("127.0.0.1:0".parse().unwrap(), config)
        .await
        .unwrap();
    let (addr, stop) = (target.local_addr(), CancellationToken::new());
    let task = tokio::spawn(target.serve(stop.clone()));
    (Server { addr, stop, task }, Client::connect(addr).await)
}

pub(super) struct Reply {
    pub(super) status: u16,
    head: String,
    pub(super) body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }

    pub(super) fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// One keep-alive HTTP/1.1 connection, speaking just enough of the protocol for these tests.
pub(super) struct Client {
    stream: TcpStream,
    headers: String,
}

impl Client {
    pub(super) async fn connect(addr: SocketAddr) -> Self {
        Self {
            stream: TcpStream::connect(addr).await.unwrap(),
            headers: String::new(),
        }
    }

    /// Sends `name: value` with every following request.
    pub(super) fn set(&mut self, name: &str, value: &str) {
        self.headers += &format!("{name}: {value}\r\n");
    }

    pub(super) async fn get(&mut self, target: &str) -> Reply {
        self.send("GET", target, None).await
    }

    pub(super) async fn post(&mut self, target: &str, body: &str) -> Reply {
        self.send("POST", target, Some(body)).await
    }

    /// Sends one request and reads one `Content-Length`-framed response.
    async fn send(&mut self, method: &str, target: &str, body: Option<&str>) -> Reply {
        let mut request = format!(
            "{method} {target} HTTP/1.1\r\nHost: test\r\n{}",
            self.headers
        );
        if let Some(body) = body {
            request += &format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                body.len()
            );
        }
        request = request + "\r\n" + body.unwrap_or_default();
        self.stream.write_all(request.as_bytes()).await.unwrap();

        let mut buf = Vec::new();
        let head_end = loop {
            if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break at;
            }
            self.read_more(&mut buf).await;
        };
        let head = String::from_utf8(buf[..head_end].to_vec()).unwrap();
        let mut reply = Reply {
            status: head[9..12].parse().unwrap(),
            head,
            body: String::new(),
        };
        let length: usize = reply.header("content-length").unwrap().parse().unwrap();
        buf.drain(..head_end + 4);
        while buf.len() < length {
            self.read_more(&mut buf).await;
        }
        reply.body = String::from_utf8(buf).unwrap();
        reply
    }

    async fn read_more(&mut self, buf: &mut Vec<u8>) {
        let mut chunk = [0u8; 8192];
        let n = self.stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "connection closed mid-response");
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[tokio::test]
async fn responses_have_a_content_type_and_echo_the_run_id() {
    let (_server, mut client) = start(DemoConfig::fast()).await;
    let plain = client.get("/health").await;
    assert_eq!(
        (plain.status, plain.body.as_str()),
        (200, r#"{"status":"ok"}"#)
    );
    assert_eq!(plain.header("content-type"), Some("application/json"));
    assert_eq!(plain.header("x-test-run-id"), None);
    assert!(client
        .get("/")
        .await
        .header("content-type")
        .unwrap()
        .starts_with("text/html"));
    client.set("X-Test-Run-Id", "run-42");
    for path in ["/health", "/nope", "/api/v1/orders"] {
        assert_eq!(
            client.get(path).await.header("x-test-run-id"),
            Some("run-42"),
            "{path}"
        );
    }
}

#[tokio::test]
async fn login_token_unlocks_account_and_orders() {
    let (_server, mut client) = start(DemoConfig::fast()).await;
    let login = r#"{"email":"perf-test-user@example.com","password":"SuperSecurePassword123!"}"#;
    let json = client.post("/api/v1/auth/login", login).await.json();
    assert_eq!(
        (&json["token_type"], &json["expires_in"]),
        (&"Bearer".into(), &3600.into())
    );
    client.set(
        "Authorization",
        &format!("Bearer {}", json["access_token"].as_str().unwrap()),
    );

    let orders = client.get("/api/v1/orders?limit=3&status=completed").await;
    assert_eq!(orders.status, 200);
    assert_eq!(orders.json()["orders"].as_array().unwrap().len(), 3);
    assert_eq!(orders.json()["orders"][0]["status"], "completed");
    assert_eq!(client.get("/api/v1/account/profile").await.status, 200);
    let order = r#"{"currency":"USD","items":[{"sku":"sku_12345","quantity":1,"unit_price":79.99},
        {"sku":"sku_98765","quantity":2,"unit_price":24.50}]}"#;
    let created = client.post("/api/v1/orders", order).await;
    assert_eq!(created.status, 201);
    assert_eq!(
        (
            created.json()["total"].as_f64(),
            created.json()["item_count"].as_u64()
        ),
        (Some(128.99), Some(3))
    );
    assert_eq!(
        client
            .post("/api/v1/orders", r#"{"items":[]}"#)
            .await
            .status,
        400
    );
}

#[tokio::test]
async fn protected_routes_reject_missing_or_forged_tokens_and_bad_logins() {
    let (_server, mut client) = start(DemoConfig::fast()).await;
    let unauthorized = (401, r#"{"error":"unauthorized"}"#.to_owned());
    let reply = client.get("/api/v1/account/profile").await;
    assert_eq!((reply.status, reply.body), unauthorized);
    let reply = client
        .post("/api/v1/orders", r#"{"items":[{"sku":"a"}]}"#)
        .await;
    assert_eq!((reply.status, reply.body), unauthorized);
    client.set("Authorization", "Bearer 0123456789abcdef0123456789abcdef");
    assert_eq!(client.get("/api/v1/orders").await.status, 401);
    for bad in [
        "{not json",
        r#"{"email":"a@b.c"}"#,
        r#"{"email":"","password":"x"}"#,
    ] {
        assert_eq!(
            client.post("/api/v1/auth/login", bad).await.status,
            400,
            "{bad}"
        );
    }
}

#[tokio::test]
async fn session_cookie_flow_fills_and_confirms_a_cart() {
    let (_server, mut client) = start(DemoConfig::fast()).await;
    assert_eq!(
        client.post("/cart/add", r#"{"productId":1}"#).await.status,
        401
    );
    assert_eq!(
        client.send("POST", "/checkout/confirm", None).await.status,
        401
    );
    let auth = client
        .post("/authenticate", r#"{"user":"foo","password":"bar"}"#)
        .await;
    let set_cookie = auth.header("set-cookie").unwrap();
    assert!(set_cookie.starts_with("session=") && set_cookie.ends_with("; Path=/; HttpOnly"));
    client.set(
        "Cookie",
        &format!("theme=dark; {}", set_cookie.split(';').next().unwrap()),
    );

    for (i, id) in ["1", "2", "42", r#""4711""#].into_iter().enumerate() {
        assert_eq!(
            client
                .get(&format!("/product/{}", id.trim_matches('"')))
                .await
                .status,
            200
        );
        let added = client
            .post("/cart/add", &format!(r#"{{"productId":{id}}}"#))
            .await;
        assert_eq!(added.json()["cart_items"], i + 1);
    }
    let confirmed = client.send("POST", "/checkout/confirm", None).await;
    assert_eq!(
        (confirmed.status, confirmed.json()["items"].as_u64()),
        (200, Some(4))
    );
    assert_eq!(
        client.send("POST", "/checkout/confirm", None).await.json()["items"],
        0
    );
    assert_eq!(client.post("/cart/add", "{}").await.status, 400);
}

#[tokio::test]
async fn unknown_paths_are_404_and_wrong_methods_405() {
    let (_server, mut client) = start(DemoConfig::fast()).await;
    let missing = client.get("/api/v2/nothing").await;
    assert_eq!(
        (missing.status, missing.json()["error"].as_str()),
        (404, Some("not found"))
    );
    assert_eq!(client.get("/api/products/missing").await.status, 404);
    assert_eq!(client.get("/api/products/sku_1/reviews").await.status, 404);
    let wrong = client.send("DELETE", "/api/v1/orders", None).await;
    assert_eq!(
        (wrong.status, wrong.header("allow")),
        (405, Some("GET, POST"))
    );
    assert_eq!(
        client.get("/api/v1/checkout").await.header("allow"),
        Some("POST")
    );
}

#[tokio::test]
async fn catalogue_honours_query_parameters() {
    let (_server, mut client) = start(DemoConfig::fast()).await;
    let list = client
        .get("/api/products?category=shoes&limit=5")
        .await
        .json();
    assert_eq!(list["products"].as_array().unwrap().len(), 5);
    assert_eq!(list["products"][4]["category"], "shoes");
    let capped = client.get("/api/products?limit=1000").await.json();
    assert_eq!(capped["products"].as_array().unwrap().len(), 100);
    assert_eq!(
        client.get("/api/products/sku_12345").await.json()["id"],
        "sku_12345"
    );
    let found = client
        .get("/api/v1/search?q=running+shoes&page=1&per_page=7&sort=relevance")
        .await;
    assert_eq!(found.json()["query"], "running shoes");
    assert_eq!(found.json()["results"].as_array().unwrap().len(), 7);
    let filters = "/api/v1/search/filters?category=footwear&brand=nike&min_price=50&max_price=200&in_stock=true";
    let applied = &client.get(filters).await.json()["applied"];
    assert_eq!(
        (
            &applied["brand"],
            &applied["max_price"],
            &applied["in_stock"]
        ),
        (&"nike".into(), &200.into(), &true.into())
    );
    assert_eq!(
        client
            .get("/api/v1/search/filters?min_price=cheap")
            .await
            .status,
        400
    );
    let summary = client
        .get("/api/v1/cart/summary?cart_id=cart_778899")
        .await
        .json();
    assert_eq!(summary["cart_id"], "cart_778899");
    let rates = r#"{"cart_id":"cart_778899","destination":{"postal_code":"10001","country":"US"}}"#;
    assert_eq!(
        client.post("/api/v1/shipping/rates", rates).await.status,
        200
    );
    let checkout =
        r#"{"cart_id":"cart_778899","customer_id":"cust_778899","payment_token":"tok_visa_4242"}"#;
    assert_eq!(client.post("/api/v1/checkout", checkout).await.status, 201);
}

#[tokio::test]
async fn error_rate_one_fails_every_request_and_is_counted() {
    let args = DemoTargetArgs {
        error_rate: Some(1.0),
        latency: Some("0".into()),
        ..Default::default()
    };
    let (_server, mut client) = start(DemoConfig::from_args(&args).unwrap()).await;
    let reply = client.get("/health").await;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (500, r#"{"error":"injected failure"}"#)
    );
    let stats = client.get("/__stats").await.json();
    assert_eq!(stats["injected_errors"]["GET /health"], 1);
}

#[tokio::test]
async fn stats_count_requests_per_route_and_in_total() {
    let (_server, mut client) = start(DemoConfig::fast()).await;
    for _ in 0..5 {
        client.get("/api/products?limit=2").await;
    }
    for path in ["/api/products/sku_1", "/api/products/sku_2", "/nope"] {
        client.get(path).await;
    }
    client.send("PUT", "/health", None).await;
    let stats = client.get("/__stats").await.json();
    assert_eq!(stats["routes"]["GET /api/products"], 5);
    assert_eq!(stats["routes"]["GET /api/products/{id}"], 2);
    assert_eq!(stats["routes"]["GET /health"], 0);
    assert_eq!(
        (&stats["not_found"], &stats["method_not_allowed"]),
        (&1.into(), &1.into())
    );
    assert_eq!(stats["total"], 9, "/__stats itself is not counted: {stats}");
}

#[tokio::test]
async fn route_latency_delays_only_that_route() {
    // 500 ms: far above what a plain request takes even while other work loads the CPUs.
    let route_latency = vec!["/health=fixed(500ms)".into()];
    let args = DemoTargetArgs {
        latency: Some("0".into()),
        route_latency,
        ..Default::default()
    };
    let (_server, mut client) = start(DemoConfig::from_args(&args).unwrap()).await;
    let started = Instant::now();
    client.get("/health").await;
    assert!(started.elapsed() >= Duration::from_millis(500));
    let started = Instant::now();
    client.get("/api/products/sku_1").await;
    assert!(started.elapsed() < Duration::from_millis(500));
}

#[tokio::test]
async fn speaks_http2_with_prior_knowledge() {
    let (server, _) = start(DemoConfig::fast()).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    // HPACK by hand: :method GET and :scheme http from the static table, :path and :authority
    // as literals with an indexed name.
    let mut block = vec![0x82, 0x86, 0x04, 7];
    block.extend_from_slice(b"/health");
    block.extend_from_slice(b"\x01\x04test");
    let mut bytes = H2_PREFACE.to_vec();
    bytes.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]); // empty SETTINGS
    bytes.extend_from_slice(&[0, 0, block.len() as u8, 1, 0x05, 0, 0, 0, 1]); // HEADERS, END_STREAM|END_HEADERS
    bytes.extend_from_slice(&block);
    stream.write_all(&bytes).await.unwrap();

    let (mut status, mut body) = (None, Vec::new());
    while body.is_empty() {
        let mut header = [0u8; 9];
        stream.read_exact(&mut header).await.unwrap();
        let mut payload = vec![0u8; usize::from(header[1]) << 8 | usize::from(header[2])];
        stream.read_exact(&mut payload).await.unwrap();
        match (header[3], header[8]) {
            (1, 1) => status = payload.first().copied(),
            (0, 1) => body = payload,
            _ => {}
        }
    }
    assert_eq!(status, Some(0x88), "HPACK-indexed :status 200");
    assert_eq!(body, br#"{"status":"ok"}"#);
}

#[tokio::test]
async fn serve_returns_soon_after_stop_even_with_open_connections() {
    let (server, mut idle) = start(DemoConfig::fast()).await;
    idle.get("/health").await;
    let _silent = TcpStream::connect(server.addr).await.unwrap();
    server.stop.cancel();
    tokio::time::timeout(Duration::from_secs(3), server.task)
        .await
        .expect("serve stopped")
        .unwrap();
    let mut rest = Vec::new();
    assert_eq!(
        idle.stream.read_to_end(&mut rest).await.unwrap(),
        0,
        "keep-alive connection closed"
    );
}
