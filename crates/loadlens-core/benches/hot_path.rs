//! Micro-benchmarks of the request path (issue #18): recording a sample into the statistics,
//! rendering a templated request, parsing a response head (httparse, as hyper does), the whole
//! HTTP/1.1 client exchange over an in-memory pipe on hyper and on loadlens's own codec, and the
//! aggregation path with up to
//! 16 threads recording at once while the aggregator drains every shard.
//!
//! `cargo bench -p loadlens-core --bench hot_path` (divan; numbers in docs/benchmarks.md).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use divan::{black_box, Bencher};
use loadlens_core::sample::{NameId, Phases, Sample};
use loadlens_core::stats::{Recorder, RequestStats, StatsSet};
use loadlens_core::template::{Ctx, Globals, Names, Slot, Template};

fn main() {
    divan::main();
}

/// A successful request on a reused connection, as the fast benchmark records millions of.
fn sample(i: u64) -> Sample {
    // Latencies spread over 50 µs..1 ms, so recording touches several HDR buckets.
    let total = Duration::from_micros(50 + (i * 7919) % 950);
    Sample {
        name: NameId(0),
        started_at: SystemTime::UNIX_EPOCH,
        total,
        schedule_delay: Duration::ZERO,
        phases: Phases {
            ttfb: Some(total - Duration::from_micros(10)),
            download: Some(Duration::from_micros(10)),
            ..Phases::default()
        },
        status: Some(200),
        bytes_sent: 80,
        bytes_received: 140,
        content_length: 2,
        new_connection: false,
        failure: None,
        checks_passed: 0,
        checks_failed: 0,
        trace: None,
        vu: 1,
        scenario: 0,
        user_type: 0,
        task: 0,
        url: None,
        protocol: Some("1.1"),
    }
}

const SAMPLES: usize = 1024;

fn samples() -> Vec<Sample> {
    (0..SAMPLES as u64).map(sample).collect()
}

/// Folding one sample into one request name's histograms and counters (no lock).
#[divan::bench]
fn record_request_stats(b: Bencher<'_, '_>) {
    let s = samples();
    let mut stats = RequestStats::default();
    let mut i = 0;
    b.bench_local(|| {
        i = (i + 1) % SAMPLES;
        stats.record(black_box(&s[i]));
    });
}

/// `Recorder::record` from one thread: thread index, shard lock, fold.
#[divan::bench]
fn record_via_recorder(b: Bencher<'_, '_>) {
    let s = samples();
    let rec = Recorder::new(1);
    let mut i = 0;
    b.bench_local(|| {
        i = (i + 1) % SAMPLES;
        rec.record(black_box(&s[i]));
    });
}

/// `threads` threads record at once into one `Recorder` while a drainer merges every shard
/// as often as it can (far more often than the aggregator's once a second): the time is per
/// sample recorded by each thread. The contention a 16- or 64-core machine would add shows as
/// the growth of this figure with the thread count.
#[divan::bench(args = [1, 2, 4, 16], sample_count = 20, sample_size = 1)]
fn record_concurrent(b: Bencher<'_, '_>, threads: usize) {
    const PER_THREAD: usize = 100_000;
    let s = Arc::new(samples());
    b.counter(divan::counter::ItemsCount::new(threads * PER_THREAD))
        .bench_local(|| {
            let rec = Recorder::new(1);
            let stop = Arc::new(AtomicBool::new(false));
            let drainer = {
                let (rec, stop) = (rec.clone(), stop.clone());
                std::thread::spawn(move || {
                    let (mut into, mut spare) = (StatsSet::new(1), StatsSet::new(1));
                    while !stop.load(Ordering::Relaxed) {
                        rec.drain_into(&mut into, &mut spare);
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    rec.drain_into(&mut into, &mut spare);
                    into.requests[0].count
                })
            };
            let workers: Vec<_> = (0..threads)
                .map(|_| {
                    let (rec, s) = (rec.clone(), s.clone());
                    std::thread::spawn(move || {
                        for i in 0..PER_THREAD {
                            rec.record(&s[i % SAMPLES]);
                        }
                    })
                })
                .collect();
            for w in workers {
                w.join().unwrap();
            }
            stop.store(true, Ordering::Relaxed);
            let n = drainer.join().unwrap();
            assert_eq!(
                n,
                (threads * PER_THREAD) as u64,
                "every sample counted once"
            );
        });
}

/// Shards as the `Recorder` lays them out since issue #18: each on cache lines of its own.
#[repr(align(128))]
struct Padded(std::sync::Mutex<StatsSet>);

/// `threads` threads each recording into their own shard (as many shards as a `threads`-core
/// machine's `Recorder` has, 2 per core), with the shards laid out side by side as before issue
/// #18 (`padded == false`: neighbouring lock words share a cache line) or padded. Time per
/// sample recorded by each thread.
fn shards_layout(b: Bencher<'_, '_>, threads: usize, padded: bool) {
    use std::sync::Mutex;
    const PER_THREAD: usize = 100_000;
    let s = Arc::new(samples());
    let n = (threads * 2).clamp(4, 64);
    b.counter(divan::counter::ItemsCount::new(threads * PER_THREAD))
        .bench_local(|| {
            let plain: Arc<Vec<Mutex<StatsSet>>> =
                Arc::new((0..n).map(|_| Mutex::new(StatsSet::new(1))).collect());
            let pad: Arc<Vec<Padded>> = Arc::new(
                (0..n)
                    .map(|_| Padded(Mutex::new(StatsSet::new(1))))
                    .collect(),
            );
            let workers: Vec<_> = (0..threads)
                .map(|t| {
                    let (plain, pad, s) = (plain.clone(), pad.clone(), s.clone());
                    std::thread::spawn(move || {
                        let m = if padded { &pad[t % n].0 } else { &plain[t % n] };
                        for i in 0..PER_THREAD {
                            m.lock().unwrap().record(&s[i % SAMPLES]);
                        }
                    })
                })
                .collect();
            for w in workers {
                w.join().unwrap();
            }
        });
}

/// See [`shards_layout`]: the layout before issue #18.
#[divan::bench(args = [2, 16], sample_count = 20, sample_size = 1)]
fn shards_side_by_side(b: Bencher<'_, '_>, threads: usize) {
    shards_layout(b, threads, false);
}

/// See [`shards_layout`]: each shard on its own cache lines.
#[divan::bench(args = [2, 16], sample_count = 20, sample_size = 1)]
fn shards_padded(b: Bencher<'_, '_>, threads: usize) {
    shards_layout(b, threads, true);
}

/// One aggregator tick's merge of a busy shard: every histogram of one name.
#[divan::bench]
fn merge_shard(b: Bencher<'_, '_>) {
    let mut shard = StatsSet::new(1);
    for s in samples() {
        shard.record(&s);
    }
    let mut into = StatsSet::new(1);
    b.bench_local(|| into.merge(black_box(&shard)));
}

struct OneVar;
impl Names for OneVar {
    fn slot(&mut self, name: &str) -> Option<Slot> {
        (name == "id").then_some(Slot::Vu(0))
    }
    fn counter(&mut self, _: &str) -> usize {
        0
    }
}

/// Rendering what varies of a templated request: URL with a variable and a random number
/// parsed to a `Uri`, one header, a JSON body (what the VU does before each send).
#[divan::bench]
fn render_templated_request(b: Bencher<'_, '_>) {
    let url = Template::compile(
        "http://127.0.0.1:8080/items/{{ id }}?n={{ random_int(1, 1000) }}",
        &mut OneVar,
    )
    .unwrap();
    let header = Template::compile("Bearer {{ id }}", &mut OneVar).unwrap();
    let body = Template::compile(r#"{"id": "{{ id }}", "qty": 3}"#, &mut OneVar).unwrap();
    let vars = vec![Some("user-4711".to_owned())];
    let globals = Globals::new(0, 0);
    let mut rng = fastrand::Rng::with_seed(7);
    b.bench_local(|| {
        let mut ctx = Ctx {
            vars: &vars,
            globals: &globals,
            vu_id: 1,
            iteration: 1,
            rng: &mut rng,
        };
        let u: http::Uri = url.render_string(&mut ctx).unwrap().parse().unwrap();
        let h = http::HeaderValue::from_str(&header.render_string(&mut ctx).unwrap()).unwrap();
        let body = bytes::Bytes::from(body.render_string(&mut ctx).unwrap());
        black_box((u, h, body));
    });
}

/// nginx's answer to `GET /` in the fast benchmark.
const NGINX_HEAD: &[u8] = b"HTTP/1.1 200 OK\r\nServer: nginx/1.26.3\r\nDate: Thu, 03 Dec 2026 09:00:00 GMT\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok";

/// httparse on a response head (the parser under hyper), without building a header map.
#[divan::bench]
fn parse_head_httparse(b: Bencher<'_, '_>) {
    b.bench_local(|| {
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let mut resp = httparse::Response::new(&mut headers);
        let n = resp.parse(black_box(NGINX_HEAD)).unwrap();
        black_box((n, resp.code));
    });
}

/// httparse plus the `http::HeaderMap` hyper builds from it for every response.
#[divan::bench]
fn parse_head_to_header_map(b: Bencher<'_, '_>) {
    b.bench_local(|| {
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let mut resp = httparse::Response::new(&mut headers);
        resp.parse(black_box(NGINX_HEAD)).unwrap();
        let mut map = http::HeaderMap::with_capacity(resp.headers.len());
        for h in resp.headers.iter() {
            map.append(
                http::HeaderName::from_bytes(h.name.as_bytes()).unwrap(),
                http::HeaderValue::from_bytes(h.value).unwrap(),
            );
        }
        black_box(map);
    });
}

/// The server side of the in-memory exchanges: [`NGINX_HEAD`] for every request head.
async fn respond(mut server_io: tokio::io::DuplexStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 16 << 10];
    let mut have = 0;
    loop {
        let Ok(n) = server_io.read(&mut buf[have..]).await else {
            return;
        };
        if n == 0 {
            return;
        }
        have += n;
        // One answer per complete request head.
        while let Some(end) = buf[..have].windows(4).position(|w| w == b"\r\n\r\n") {
            buf.copy_within(end + 4..have, 0);
            have -= end + 4;
            if server_io.write_all(NGINX_HEAD).await.is_err() {
                return;
            }
        }
    }
}

/// The same exchange on loadlens's own HTTP/1.1 codec (the default): the request written from
/// one buffer, the head parsed into a `HeaderMap`, the body framed by its length.
#[divan::bench]
fn lean_h1_exchange_in_memory(b: Bencher<'_, '_>) {
    use loadlens_core::client::h1::Connection as H1Connection;
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let (client_io, server_io) = tokio::io::duplex(64 << 10);
    rt.spawn(respond(server_io));
    let mut conn = H1Connection::new(client_io);
    b.bench_local(|| {
        rt.block_on(async {
            conn.start_request(&http::Method::GET, "/");
            conn.header("host", b"127.0.0.1:18480");
            conn.header("user-agent", b"loadlens/0.1.0");
            conn.send(b"").await.unwrap();
            let head = conn.read_head(&http::Method::GET, true).await.unwrap();
            black_box(head.headers);
            while let Some(data) = conn.next_data().await.unwrap() {
                black_box(data);
            }
            assert!(conn.is_reusable());
        })
    });
}

/// hyper's whole HTTP/1.1 client exchange (dispatch channel, request encoding, response head
/// parsing, body frame) on an in-memory pipe, the connection driven inline as the VU does,
/// against a responder task that answers every request head with [`NGINX_HEAD`]: the floor
/// that hyper's client puts under every request, without the kernel.
#[divan::bench]
fn hyper_h1_exchange_in_memory(b: Bencher<'_, '_>) {
    use http_body_util::{BodyExt, Full};
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let (client_io, server_io) = tokio::io::duplex(64 << 10);
    rt.spawn(respond(server_io));
    let (mut send, conn) = rt
        .block_on(
            hyper::client::conn::http1::handshake::<_, Full<bytes::Bytes>>(
                hyper_util::rt::TokioIo::new(client_io),
            ),
        )
        .unwrap();
    let mut conn = Box::pin(conn);
    b.bench_local(|| {
        rt.block_on(async {
            let req = http::Request::builder()
                .uri("/")
                .header(http::header::HOST, "127.0.0.1:18480")
                .header(http::header::USER_AGENT, "loadlens/0.1.0")
                .body(Full::new(bytes::Bytes::new()))
                .unwrap();
            let fut = send.send_request(req);
            tokio::pin!(fut);
            // The connection future never ends while the responder runs: it only drives.
            let resp = tokio::select! {
                biased;
                r = &mut fut => r.unwrap(),
                _ = conn.as_mut() => unreachable!("connection ended"),
            };
            let mut body = resp.into_body();
            loop {
                tokio::select! {
                    biased;
                    f = body.frame() => match f {
                        None => break,
                        Some(f) => { black_box(f.unwrap()); }
                    },
                    _ = conn.as_mut() => unreachable!("connection ended"),
                }
            }
        })
    });
}
