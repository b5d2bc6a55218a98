//! Stateless handlers of the demo target and the helpers every handler uses: the catalogue,
//! orders, cart and search bodies, written straight into one `String` per response.
//!
//! Fake data is derived from a hash of the id or query, so the same request always gets the same
//! answer and nothing is stored.

use std::borrow::Cow;
use std::fmt::{self, Write as _};

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Response, StatusCode};
use http_body_util::Full;
use serde::Deserialize;

/// A canned JSON error response, the body built at compile time.
macro_rules! json_error {
    ($status:ident, $message:literal) => {
        canned(
            StatusCode::$status,
            concat!(r#"{"error":""#, $message, r#""}"#),
        )
    };
}

/// Appends formatted text to a `String` (which cannot fail).
macro_rules! w {
    ($out:expr, $($arg:tt)*) => {{ let _ = write!($out, $($arg)*); }};
}
pub(super) use {json_error, w};

pub(super) type Reply = Response<Full<Bytes>>;

pub(super) const INDEX_HTML: &str =
    "<!doctype html><html><head><title>loadlens demo store</title></head>\
<body><h1>loadlens demo store</h1><ul><li><a href=\"/api/products?category=shoes\">Products</a>\
</li><li><a href=\"/__stats\">Server counters</a></li></ul></body></html>\n";

pub(super) fn reply(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Reply {
    let mut reply = Response::new(Full::new(body.into()));
    *reply.status_mut() = status;
    reply
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    reply
}

pub(super) fn json(status: StatusCode, body: String) -> Reply {
    reply(status, "application/json", body)
}

/// A fixed JSON body: no allocation for it.
pub(super) fn canned(status: StatusCode, body: &'static str) -> Reply {
    reply(status, "application/json", body)
}

const CATEGORIES: [&str; 6] = [
    "shoes",
    "apparel",
    "outdoor",
    "electronics",
    "home",
    "garden",
];
const BRANDS: [&str; 6] = ["nike", "adidas", "asics", "patagonia", "acme", "northwind"];
const NAMES: [&str; 8] = [
    "Runner", "Jacket", "Backpack", "Headset", "Bottle", "Hoodie", "Lamp", "Tent",
];

/// FNV-1a: a stable seed, so the same id always describes the same product.
pub(super) fn seed(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

pub(super) fn price_cents(seed: u64) -> u64 {
    499 + seed % 25_000
}

pub(super) fn order_id() -> String {
    format!("ord_{:012x}", fastrand::u64(..1 << 48))
}

/// Writes one product object; `id` must already be JSON-escaped.
fn write_product(out: &mut String, id: impl fmt::Display, seed: u64, category: Option<&str>) {
    let pick =
        |list: &[&'static str], shift: u32| list[((seed >> shift) % list.len() as u64) as usize];
    let (name, brand, price) = (pick(&NAMES, 8), pick(&BRANDS, 16), Money(price_cents(seed)));
    let category = Js(category.unwrap_or_else(|| pick(&CATEGORIES, 24)));
    let (in_stock, rating) = (!seed.is_multiple_of(7), 30 + (seed >> 32) % 20);
    w!(
        out,
        r#"{{"id":"{id}","name":"{name}","brand":"{brand}","category":"{category}","price":{price},"currency":"USD","in_stock":{in_stock},"rating":{}.{}}}"#,
        rating / 10,
        rating % 10
    );
}

/// Writes `count` products starting at position `first` of the list selected by `base`.
fn write_products(out: &mut String, base: u64, first: usize, count: usize, category: Option<&str>) {
    for i in first..first + count {
        let n = 10_000 + base.wrapping_add(i as u64 * 7919) % 90_000;
        out.push_str(if i == first { "" } else { "," });
        write_product(out, format_args!("sku_{n}"), seed(&n.to_string()), category);
    }
}

pub(super) fn products(query: Option<&str>) -> Reply {
    let limit = number(query, "limit").unwrap_or(24).clamp(1, 100);
    let category = param(query, "category").map(decode);
    let category = category.as_deref();
    let mut out = String::with_capacity(64 + limit * 170);
    out.push_str(r#"{"products":["#);
    write_products(
        &mut out,
        seed(category.unwrap_or("all")),
        0,
        limit,
        category,
    );
    w!(out, r#"],"count":{limit}}}"#);
    json(StatusCode::OK, out)
}

pub(super) fn product(id: &str) -> Reply {
    if id == "missing" {
        return json_error!(NOT_FOUND, "product not found");
    }
    let (id, mut out) = (decode(id), String::with_capacity(200));
    write_product(&mut out, Js(&id), seed(&id), None);
    json(StatusCode::OK, out)
}

pub(super) fn profile(user: u64) -> Reply {
    let id = user % 1_000_000;
    json(
        StatusCode::OK,
        format!(
            r#"{{"id":"cust_{id:06}","email":"perf-test-user@example.com","name":"Perf Test User","tier":"gold"}}"#
        ),
    )
}

pub(super) fn orders(user: u64, query: Option<&str>) -> Reply {
    let limit = number(query, "limit").unwrap_or(10).clamp(1, 100);
    let status = param(query, "status").map(decode);
    let status = Js(status.as_deref().unwrap_or("completed"));
    let mut out = String::with_capacity(64 + limit * 90);
    out.push_str(r#"{"orders":["#);
    for i in 0..limit as u64 {
        let order = (user ^ i.wrapping_mul(0x9e37_79b9_7f4a_7c15)) >> 16;
        let (comma, items) = (if i == 0 { "" } else { "," }, 1 + order % 4);
        let total = Money(price_cents(order) * items);
        w!(
            out,
            r#"{comma}{{"id":"ord_{order:012x}","status":"{status}","item_count":{items},"total":{total}}}"#
        );
    }
    w!(out, r#"],"limit":{limit},"status":"{status}"}}"#);
    json(StatusCode::OK, out)
}

pub(super) fn create_order(body: &[u8]) -> Reply {
    #[derive(Deserialize)]
    struct NewOrder<'a> {
        #[serde(borrow)]
        items: Vec<Item<'a>>,
        #[serde(borrow)]
        currency: Option<Cow<'a, str>>,
    }
    #[derive(Deserialize)]
    struct Item<'a> {
        #[serde(borrow)]
        sku: Option<Cow<'a, str>>,
        quantity: Option<u32>,
        unit_price: Option<f64>,
    }
    let order = match serde_json::from_slice::<NewOrder<'_>>(body) {
        Ok(order) if !order.items.is_empty() => order,
        _ => {
            return json_error!(
                BAD_REQUEST,
                "expected JSON {items: [{sku, quantity, unit_price}]}"
            )
        }
    };
    let (mut count, mut cents) = (0u64, 0u64);
    for item in &order.items {
        let quantity = u64::from(item.quantity.unwrap_or(1));
        let unit = match item.unit_price {
            Some(price) if price.is_finite() && price >= 0.0 => (price * 100.0).round() as u64,
            _ => price_cents(seed(item.sku.as_deref().unwrap_or_default())),
        };
        count = count.saturating_add(quantity);
        cents = cents.saturating_add(unit.saturating_mul(quantity));
    }
    let (id, total) = (order_id(), Money(cents));
    let currency = Js(order.currency.as_deref().unwrap_or("USD"));
    let body = format!(
        r#"{{"id":"{id}","status":"pending","currency":"{currency}","item_count":{count},"total":{total}}}"#
    );
    json(StatusCode::CREATED, body)
}

pub(super) fn cart_summary(query: Option<&str>) -> Reply {
    let Some(cart) = param(query, "cart_id").map(decode) else {
        return json_error!(BAD_REQUEST, "cart_id is required");
    };
    let (s, id) = (seed(&cart), Js(&cart));
    let (items, subtotal) = (1 + s % 5, price_cents(s) * (1 + s % 5));
    let (tax, total) = (subtotal * 8 / 100, subtotal + subtotal * 8 / 100 + 599);
    let (subtotal, tax, total) = (Money(subtotal), Money(tax), Money(total));
    let body = format!(
        r#"{{"cart_id":"{id}","items":{items},"subtotal":{subtotal},"tax":{tax},"shipping":5.99,"total":{total},"currency":"USD"}}"#
    );
    json(StatusCode::OK, body)
}

pub(super) fn shipping_rates(body: &[u8]) -> Reply {
    if serde_json::from_slice::<serde::de::IgnoredAny>(body).is_err() {
        return json_error!(BAD_REQUEST, "expected a JSON body");
    }
    let s = seed(std::str::from_utf8(body).unwrap_or_default());
    let (ground, express) = (Money(499 + s % 300), Money(1299 + s % 900));
    let body = format!(
        r#"{{"rates":[{{"carrier":"USPS","service":"ground","amount":{ground},"days":5}},{{"carrier":"UPS","service":"express","amount":{express},"days":2}}],"currency":"USD"}}"#
    );
    json(StatusCode::OK, body)
}

pub(super) fn checkout(body: &[u8]) -> Reply {
    #[derive(Deserialize)]
    struct Checkout<'a> {
        #[serde(borrow)]
        cart_id: Cow<'a, str>,
    }
    let Ok(Checkout { cart_id }) = serde_json::from_slice::<Checkout<'_>>(body) else {
        return json_error!(BAD_REQUEST, "expected JSON {cart_id, ...}");
    };
    let (id, total, cart) = (
        order_id(),
        Money(price_cents(seed(&cart_id)) * 2),
        Js(&cart_id),
    );
    let body = format!(
        r#"{{"order_id":"{id}","status":"confirmed","cart_id":"{cart}","total":{total},"currency":"USD"}}"#
    );
    json(StatusCode::CREATED, body)
}

pub(super) fn search(query: Option<&str>) -> Reply {
    let q = param(query, "q").map(decode).unwrap_or_default();
    let page = number(query, "page").unwrap_or(1).max(1);
    let per_page = number(query, "per_page").unwrap_or(20).clamp(1, 100);
    let sort = param(query, "sort").map(decode);
    let (s, sort) = (seed(&q), Js(sort.as_deref().unwrap_or("relevance")));
    let total = 20 + (s % 480) as usize;
    let first = (page - 1).saturating_mul(per_page);
    let shown = total.saturating_sub(first).min(per_page);
    let mut out = String::with_capacity(128 + shown * 170);
    let q = Js(&q);
    w!(
        out,
        r#"{{"query":"{q}","page":{page},"per_page":{per_page},"sort":"{sort}","total":{total},"results":["#
    );
    write_products(&mut out, s, first, shown, None);
    out.push_str("]}");
    json(StatusCode::OK, out)
}

pub(super) fn search_filters(query: Option<&str>) -> Reply {
    let mut out = String::with_capacity(400);
    out.push_str(r#"{"applied":{"#);
    let keys = ["category", "brand", "min_price", "max_price", "in_stock"];
    let given = keys
        .iter()
        .filter_map(|&key| Some((key, param(query, key)?)));
    for (i, (key, raw)) in given.enumerate() {
        let value = decode(raw);
        let comma = if i == 0 { "" } else { "," };
        match key {
            "min_price" | "max_price" => match value.parse::<f64>() {
                Ok(price) if price.is_finite() => w!(out, r#"{comma}"{key}":{price}"#),
                _ => return json_error!(BAD_REQUEST, "min_price and max_price must be numbers"),
            },
            "in_stock" => w!(out, r#"{comma}"{key}":{}"#, value == "true" || value == "1"),
            _ => w!(out, r#"{comma}"{key}":"{}""#, Js(&value)),
        }
    }
    let s = seed(query.unwrap_or_default());
    w!(out, r#"}},"total":{},"facets":{{"brand":["#, 5 + s % 300);
    for (i, brand) in BRANDS.iter().enumerate() {
        let (comma, count) = (if i == 0 { "" } else { "," }, 1 + (s >> (i * 8)) % 120);
        w!(out, r#"{comma}{{"value":"{brand}","count":{count}}}"#);
    }
    out.push_str("]}}");
    json(StatusCode::OK, out)
}

// ---- small text helpers ----

fn param<'a>(query: Option<&'a str>, key: &str) -> Option<&'a str> {
    let mut pairs = query?.split('&').filter_map(|pair| pair.split_once('='));
    pairs.find_map(|(k, v)| (k == key).then_some(v))
}

fn number(query: Option<&str>, key: &str) -> Option<usize> {
    param(query, key)?.parse().ok()
}

/// Decodes a query value or path segment (`%XX`, `+`); borrows when there is nothing to decode.
fn decode(raw: &str) -> Cow<'_, str> {
    if !raw.contains(['%', '+']) {
        return Cow::Borrowed(raw);
    }
    let (mut out, bytes, mut i) = (Vec::with_capacity(raw.len()), raw.as_bytes(), 0);
    while i < bytes.len() {
        let hex = raw
            .get(i + 1..i + 3)
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        let (byte, width) = match (bytes[i], hex) {
            (b'%', Some(byte)) => (byte, 3),
            (b'+', _) => (b' ', 1),
            (byte, _) => (byte, 1),
        };
        out.push(byte);
        i += width;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

/// Displays a string escaped for the inside of a JSON string literal.
pub(super) struct Js<'a>(pub(super) &'a str);

impl fmt::Display for Js<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        while let Some(at) = rest.find(|c: char| c == '"' || c == '\\' || c < ' ') {
            f.write_str(&rest[..at])?;
            match rest.as_bytes()[at] {
                b'"' => f.write_str("\\\"")?,
                b'\\' => f.write_str("\\\\")?,
                control => write!(f, "\\u{control:04x}")?,
            }
            rest = &rest[at + 1..];
        }
        f.write_str(rest)
    }
}

/// Displays cents as a JSON number with two decimals.
pub(super) struct Money(pub(super) u64);

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:02}", self.0 / 100, self.0 % 100)
    }
}
