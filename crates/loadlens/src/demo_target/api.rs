//! The demo target's request path: the route table with each route's default behaviour, routing,
//! added latency and injected failures, bearer tokens, session carts and the counters behind
//! `/__stats`. Stateless bodies are written by [`super::handlers`].
//!
//! The request path allocates only the response: routes are matched by comparing the path with a
//! static table, counters are atomics, and tokens are verified by a keyed hash, not a lookup.

use std::borrow::Cow;
use std::collections::{hash_map::RandomState, HashMap};
use std::convert::Infallible;
use std::fmt::Write as _;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use http::header::{HeaderName, HeaderValue, ALLOW, AUTHORIZATION, COOKIE, SET_COOKIE};
use http::{request::Parts, HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;
use serde::Deserialize;

use super::handlers::{self as h, canned, json, json_error, order_id, price_cents, seed, w};
use super::handlers::{Js, Money, Reply, INDEX_HTML};
use super::trace::{self, Recorder, Spans};
use super::DemoConfig;

/// Declares the routes with their built-in behaviour in one table.
macro_rules! endpoints {
    ($($name:ident: $method:ident $path:literal => $median:literal, $p99:literal, $rate:literal;)*) => {
        /// One (method, route) the demo target serves: the unit of counters, latency, errors.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub(super) enum Endpoint { $($name),* }

        impl Endpoint {
            /// In declaration order, so `ALL[e as usize] == e`.
            pub(super) const ALL: &'static [Endpoint] = &[$(Endpoint::$name),*];
            pub(super) const COUNT: usize = Self::ALL.len();

            pub(super) fn method(self) -> &'static str {
                [$(stringify!($method)),*][self as usize]
            }

            /// The path pattern, `{id}` standing for one path segment.
            pub(super) fn pattern(self) -> &'static str {
                [$($path),*][self as usize]
            }

            /// `METHOD /pattern`: the name in `/__stats`.
            pub(super) fn key(self) -> &'static str {
                [$(concat!(stringify!($method), " ", $path)),*][self as usize]
            }

            /// Built-in behaviour: median and p99 of the added latency in ms (0: none), error rate.
            pub(super) fn realistic(self) -> (u64, u64, f64) {
                [$(($median, $p99, $rate)),*][self as usize]
            }
        }
    };
}

endpoints! {
    Index: GET "/" => 3, 15, 0.0;
    Health: GET "/health" => 0, 0, 0.0;
    Products: GET "/api/products" => 8, 40, 0.0;
    Product: GET "/api/products/{id}" => 3, 15, 0.0;
    Login: POST "/api/v1/auth/login" => 15, 60, 0.0;
    Profile: GET "/api/v1/account/profile" => 5, 25, 0.0;
    ListOrders: GET "/api/v1/orders" => 8, 40, 0.0;
    CreateOrder: POST "/api/v1/orders" => 25, 120, 0.0;
    CartSummary: GET "/api/v1/cart/summary" => 5, 25, 0.0;
    ShippingRates: POST "/api/v1/shipping/rates" => 20, 100, 0.0;
    Checkout: POST "/api/v1/checkout" => 60, 300, 0.02;
    Search: GET "/api/v1/search" => 12, 80, 0.0;
    SearchFilters: GET "/api/v1/search/filters" => 5, 25, 0.0;
    Authenticate: POST "/authenticate" => 15, 60, 0.0;
    ProductPage: GET "/product/{id}" => 3, 15, 0.0;
    CartAdd: POST "/cart/add" => 5, 25, 0.0;
    CheckoutConfirm: POST "/checkout/confirm" => 60, 300, 0.02;
}

enum Routed {
    Endpoint(Endpoint),
    Stats,
    NotFound,
    MethodNotAllowed(&'static str),
}

fn route(method: &Method, path: &str) -> Routed {
    let pattern = match path {
        "/__stats" if method == Method::GET => return Routed::Stats,
        "/__stats" => return Routed::MethodNotAllowed("GET"),
        _ if id_segment(path, "/api/products/").is_some() => "/api/products/{id}",
        _ if id_segment(path, "/product/").is_some() => "/product/{id}",
        _ => path,
    };
    let mut allowed = None;
    for &endpoint in Endpoint::ALL.iter().filter(|e| e.pattern() == pattern) {
        if endpoint.method() == method.as_str() {
            return Routed::Endpoint(endpoint);
        }
        // The table only uses GET and POST, so a second method on a path means both.
        allowed = Some(allowed.map_or(endpoint.method(), |_| "GET, POST"));
    }
    allowed.map_or(Routed::NotFound, Routed::MethodNotAllowed)
}

fn id_segment<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    path.strip_prefix(prefix)
        .filter(|id| !id.is_empty() && !id.contains('/'))
}

/// Everything the connections share.
pub(super) struct State {
    config: DemoConfig,
    requests: [AtomicU64; Endpoint::COUNT],
    injected: [AtomicU64; Endpoint::COUNT],
    not_found: AtomicU64,
    method_not_allowed: AtomicU64,
    tokens: Signer,
    sessions: Signer,
    carts: Carts,
    /// Where sampled requests' spans go, when `--otlp-endpoint` is set.
    spans: Option<Spans>,
}

/// Answers one request; never fails (errors are HTTP responses).
pub(super) async fn handle(state: Arc<State>, req: Request<Incoming>) -> Result<Reply, Infallible> {
    let (parts, body) = req.into_parts();
    let mut reply = match route(&parts.method, parts.uri.path()) {
        Routed::Endpoint(endpoint) => state.serve(endpoint, &parts, body).await,
        Routed::Stats => json(StatusCode::OK, state.stats_json()),
        Routed::NotFound => {
            state.not_found.fetch_add(1, Relaxed);
            json_error!(NOT_FOUND, "not found")
        }
        Routed::MethodNotAllowed(allow) => {
            state.method_not_allowed.fetch_add(1, Relaxed);
            let mut reply = json_error!(METHOD_NOT_ALLOWED, "method not allowed");
            reply
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static(allow));
            reply
        }
    };
    let run_id = HeaderName::from_static("x-test-run-id");
    if let Some(value) = parts.headers.get(&run_id) {
        reply.headers_mut().insert(run_id, value.clone());
    }
    Ok(reply)
}

impl State {
    /// The `--gate-url` knob, if any (its poller runs beside the server).
    pub(super) fn gate(&self) -> Option<&super::gate::GateKnob> {
        self.config.gate.as_ref()
    }

    /// The shared state, and the span exporter to spawn when `config` exports spans.
    pub(super) fn new(config: DemoConfig) -> (Self, Option<trace::Exporter>) {
        let (spans, exporter) = match config.otlp_endpoint() {
            Some(endpoint) => {
                let (spans, exporter) = Spans::new(endpoint.clone());
                (Some(spans), Some(exporter))
            }
            None => (None, None),
        };
        let state = Self {
            config,
            requests: [const { AtomicU64::new(0) }; Endpoint::COUNT],
            injected: [const { AtomicU64::new(0) }; Endpoint::COUNT],
            not_found: AtomicU64::new(0),
            method_not_allowed: AtomicU64::new(0),
            tokens: Signer(RandomState::new()),
            sessions: Signer(RandomState::new()),
            carts: Carts(std::array::from_fn(|_| Mutex::default())),
            spans,
        };
        (state, exporter)
    }

    async fn serve(&self, endpoint: Endpoint, parts: &Parts, body: Incoming) -> Reply {
        self.requests[endpoint as usize].fetch_add(1, Relaxed);
        // Read the body even when failing on purpose, so the connection stays reusable.
        let body = match Limited::new(body, 64 * 1024).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(e) if e.is::<LengthLimitError>() => {
                return json_error!(PAYLOAD_TOO_LARGE, "over 64 KiB")
            }
            Err(_) => return json_error!(BAD_REQUEST, "unreadable body"),
        };
        let mut recorder = self
            .spans
            .as_ref()
            .and_then(|_| trace::sampled_parent(&parts.headers))
            .map(Recorder::start);
        let mut delay = self.config.latency(endpoint).sample();
        if let Some(g) = &self.config.gate {
            delay += g.delay();
        }
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        for &step in trace::steps(endpoint) {
            let (delay, start) = (
                self.config.operation(step.operation()).sample(),
                std::time::SystemTime::now(),
            );
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            if let Some(recorder) = recorder.as_mut() {
                recorder.step(step, start, std::time::SystemTime::now());
            }
        }
        let rate = self.config.error_rate(endpoint);
        let reply = if rate > 0.0 && fastrand::f64() < rate {
            self.injected[endpoint as usize].fetch_add(1, Relaxed);
            json_error!(INTERNAL_SERVER_ERROR, "injected failure")
        } else {
            self.respond(endpoint, parts, &body)
        };
        if let (Some(recorder), Some(spans)) = (recorder, &self.spans) {
            let status = reply.status().as_u16();
            spans.push(recorder.finish(endpoint, parts.uri.path(), status));
        }
        reply
    }

    fn respond(&self, endpoint: Endpoint, parts: &Parts, body: &[u8]) -> Reply {
        use Endpoint::*;
        let (query, path) = (parts.uri.query(), parts.uri.path());
        match endpoint {
            Index => h::reply(StatusCode::OK, "text/html; charset=utf-8", INDEX_HTML),
            Health => canned(StatusCode::OK, r#"{"status":"ok"}"#),
            Products => h::products(query),
            Product => h::product(id_segment(path, "/api/products/").unwrap_or_default()),
            ProductPage => h::product(id_segment(path, "/product/").unwrap_or_default()),
            Login => match credentials(body) {
                Some(_) => {
                    let token = self.tokens.issue();
                    let body = format!(
                        r#"{{"access_token":"{token}","token_type":"Bearer","expires_in":3600}}"#
                    );
                    json(StatusCode::OK, body)
                }
                None => json_error!(BAD_REQUEST, "expected JSON {email, password}"),
            },
            Profile | ListOrders | CreateOrder => match bearer(&parts.headers, &self.tokens) {
                None => json_error!(UNAUTHORIZED, "unauthorized"),
                Some(user) if endpoint == Profile => h::profile(user),
                Some(user) if endpoint == ListOrders => h::orders(user, query),
                Some(_) => h::create_order(body),
            },
            CartSummary => h::cart_summary(query),
            ShippingRates => h::shipping_rates(body),
            Checkout => h::checkout(body),
            Search => h::search(query),
            SearchFilters => h::search_filters(query),
            Authenticate => match credentials(body) {
                Some(user) => {
                    let cookie = format!("session={}; Path=/; HttpOnly", self.sessions.issue());
                    let body = format!(r#"{{"status":"ok","user":"{}"}}"#, Js(&user));
                    let mut reply = json(StatusCode::OK, body);
                    if let Ok(cookie) = HeaderValue::try_from(cookie) {
                        reply.headers_mut().insert(SET_COOKIE, cookie);
                    }
                    reply
                }
                None => json_error!(BAD_REQUEST, "expected JSON {user, password}"),
            },
            CartAdd | CheckoutConfirm => match session(&parts.headers, &self.sessions) {
                None => json_error!(UNAUTHORIZED, "unauthorized"),
                Some(session) if endpoint == CartAdd => self.cart_add(session, body),
                Some(session) => {
                    let Cart { items, total_cents } = self.carts.take(session);
                    let (id, total) = (order_id(), Money(total_cents));
                    let body = format!(
                        r#"{{"status":"confirmed","order_id":"{id}","items":{items},"total":{total},"currency":"USD"}}"#
                    );
                    json(StatusCode::OK, body)
                }
            },
        }
    }

    fn cart_add(&self, session: u64, body: &[u8]) -> Reply {
        #[derive(Deserialize)]
        struct AddItem {
            #[serde(rename = "productId")]
            product_id: serde_json::Value,
        }
        let product = match serde_json::from_slice::<AddItem>(body).map(|add| add.product_id) {
            Ok(id @ (serde_json::Value::Number(_) | serde_json::Value::String(_))) => id,
            _ => return json_error!(BAD_REQUEST, "expected JSON {productId}"),
        };
        let cart = self
            .carts
            .add(session, price_cents(seed(&product.to_string())));
        let body = format!(
            r#"{{"status":"added","productId":{product},"cart_items":{}}}"#,
            cart.items
        );
        json(StatusCode::OK, body)
    }

    fn stats_json(&self) -> String {
        let (mut total, mut routes, mut injected) = (0, String::new(), String::new());
        for (i, endpoint) in Endpoint::ALL.iter().enumerate() {
            let (count, failed) = (
                self.requests[i].load(Relaxed),
                self.injected[i].load(Relaxed),
            );
            total += count;
            let (comma, key) = (if i == 0 { "" } else { "," }, endpoint.key());
            w!(routes, r#"{comma}"{key}":{count}"#);
            w!(injected, r#"{comma}"{key}":{failed}"#);
        }
        let not_found = self.not_found.load(Relaxed);
        let not_allowed = self.method_not_allowed.load(Relaxed);
        total += not_found + not_allowed;
        let spans = match &self.spans {
            Some(spans) => format!(r#","spans":{}"#, spans.counts.json()),
            None => String::new(),
        };
        format!(
            r#"{{"total":{total},"routes":{{{routes}}},"injected_errors":{{{injected}}},"not_found":{not_found},"method_not_allowed":{not_allowed}{spans}}}"#
        )
    }
}

/// The non-empty `user` (or `email`) of a JSON body that also has a non-empty `password`.
fn credentials(body: &[u8]) -> Option<Cow<'_, str>> {
    #[derive(Deserialize)]
    struct Credentials<'a> {
        #[serde(borrow, alias = "email")]
        user: Cow<'a, str>,
        #[serde(borrow)]
        password: Cow<'a, str>,
    }
    let given = serde_json::from_slice::<Credentials<'_>>(body).ok()?;
    (!given.user.is_empty() && !given.password.is_empty()).then_some(given.user)
}

fn bearer(headers: &HeaderMap, tokens: &Signer) -> Option<u64> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))?;
    tokens.verify(token.trim())
}

fn session(headers: &HeaderMap, sessions: &Signer) -> Option<u64> {
    let mut lines = headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok());
    lines.find_map(|line| {
        let mut pairs = line.split(';').map(str::trim);
        pairs
            .find_map(|pair| pair.strip_prefix("session="))
            .and_then(|id| sessions.verify(id))
    })
}

/// Issues ids that verify without being remembered: a random nonce plus a keyed SipHash tag
/// (std's `RandomState` keys are random per process). Any id this process issued is accepted,
/// guessed ones are not, and memory stays constant however many users log in.
struct Signer(RandomState);

impl Signer {
    fn issue(&self) -> String {
        let nonce = fastrand::u64(..);
        format!("{nonce:016x}{:016x}", self.0.hash_one(nonce))
    }

    fn verify(&self, id: &str) -> Option<u64> {
        let (nonce, tag) = (id.get(..16)?, id.get(16..)?);
        let nonce = u64::from_str_radix(nonce, 16).ok()?;
        let valid = tag.len() == 16 && u64::from_str_radix(tag, 16).ok()? == self.0.hash_one(nonce);
        valid.then_some(nonce)
    }
}

#[derive(Clone, Copy, Default)]
struct Cart {
    items: u32,
    total_cents: u64,
}

const CART_SHARDS: usize = 16;
const CARTS_PER_SHARD: usize = 4096;

/// Carts by session nonce, sharded to keep lock contention low and capped at
/// `CART_SHARDS * CARTS_PER_SHARD` carts: when a shard is full an arbitrary cart is dropped.
struct Carts([Mutex<HashMap<u64, Cart>>; CART_SHARDS]);

impl Carts {
    fn shard(&self, session: u64) -> MutexGuard<'_, HashMap<u64, Cart>> {
        let shard = &self.0[(session % CART_SHARDS as u64) as usize];
        shard.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn add(&self, session: u64, cents: u64) -> Cart {
        let mut carts = self.shard(session);
        if carts.len() >= CARTS_PER_SHARD && !carts.contains_key(&session) {
            if let Some(victim) = carts.keys().next().copied() {
                carts.remove(&victim);
            }
        }
        let cart = carts.entry(session).or_default();
        cart.items = cart.items.saturating_add(1);
        cart.total_cents = cart.total_cents.saturating_add(cents);
        *cart
    }

    fn take(&self, session: u64) -> Cart {
        self.shard(session).remove(&session).unwrap_or_default()
    }
}
