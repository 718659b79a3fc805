//! An HTTP key-value service on ringdb: axum on tokio's multi-threaded
//! runtime, one `Db` shared by every request through the router's state,
//! the store closed after a graceful shutdown.
//!
//! Endpoints (keys are the path segment, values the raw body):
//! - `GET /kv/{key}`: 200 with the value, or 404.
//! - `PUT /kv/{key}`: stores the body; 204 once the write is durable.
//! - `DELETE /kv/{key}`: 204 once the delete is durable.
//! - `GET /scan?start=a&end=z&prefix=p&limit=n&reverse=true`: a JSON array
//!   of `[key, value]` pairs (keys and values as UTF-8, lossy).
//!
//! `cargo run --release --example kv_service -- [DIR]` serves on
//! 127.0.0.1:3000 until Ctrl-C (DIR default `./kv-data`). With `--smoke` it
//! binds 127.0.0.1:0 on a temporary store, sends itself a few requests over
//! loopback, checks the answers, and shuts down.
//!
//! Errors: a store error becomes a 500 whose body is the error's message
//! (`Error::Poisoned` after a failed sync, `Error::TooLarge` for a key or
//! value over the limits); nothing panics on a request.

use std::net::SocketAddr;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use futures::{StreamExt as _, TryStreamExt as _};
use ringdb::{Db, Options};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::oneshot;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Most entries one `/scan` returns.
const MAX_SCAN_LIMIT: usize = 10_000;

/// A store error as a response.
struct StoreError(ringdb::Error);

impl IntoResponse for StoreError {
    fn into_response(self) -> Response {
        (StatusCode::INTERNAL_SERVER_ERROR, self.0.to_string()).into_response()
    }
}

impl From<ringdb::Error> for StoreError {
    fn from(e: ringdb::Error) -> Self {
        StoreError(e)
    }
}

async fn get_key(State(db): State<Db>, Path(key): Path<String>) -> Result<Response, StoreError> {
    Ok(match db.get(key).await? {
        Some(value) => value.into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    })
}

async fn put_key(
    State(db): State<Db>,
    Path(key): Path<String>,
    body: Bytes,
) -> Result<StatusCode, StoreError> {
    // Resolves after the WAL sync covering the write: a 204 means durable.
    db.put(key, body).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn delete_key(State(db): State<Db>, Path(key): Path<String>) -> Result<StatusCode, StoreError> {
    db.delete(key).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, serde::Deserialize)]
struct ScanQuery {
    start: Option<String>,
    end: Option<String>,
    prefix: Option<String>,
    limit: Option<usize>,
    #[serde(default)]
    reverse: bool,
}

async fn scan(
    State(db): State<Db>,
    Query(q): Query<ScanQuery>,
) -> Result<Json<Vec<(String, String)>>, StoreError> {
    use std::ops::Bound;
    let scan = match q.prefix {
        Some(prefix) => db.scan_prefix(prefix),
        None => {
            let start = q.start.map_or(Bound::Unbounded, Bound::Included);
            let end = q.end.map_or(Bound::Unbounded, Bound::Excluded);
            db.scan((start, end))
        }
    };
    let scan = if q.reverse { scan.rev() } else { scan };
    let limit = q.limit.unwrap_or(MAX_SCAN_LIMIT).min(MAX_SCAN_LIMIT);
    let rows = scan
        .take(limit)
        .map_ok(|(k, v)| {
            (
                String::from_utf8_lossy(&k).into_owned(),
                String::from_utf8_lossy(&v).into_owned(),
            )
        })
        .try_collect()
        .await?;
    Ok(Json(rows))
}

fn router(db: Db) -> Router {
    Router::new()
        .route("/kv/{key}", get(get_key).put(put_key).delete(delete_key))
        .route("/scan", get(scan))
        .with_state(db)
}

/// Serves on `listener` until `shutdown` resolves, then closes the store.
async fn serve(
    db: Db,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), BoxError> {
    axum::serve(listener, router(db.clone()))
        .with_graceful_shutdown(shutdown)
        .await?;
    // Every request has been answered: sync what is buffered, stop ringdb's
    // threads, release the store's lock.
    db.close().await?;
    Ok(())
}

/// One HTTP/1.1 request over a fresh loopback connection; returns the
/// status code and body.
async fn request(addr: SocketAddr, method: &str, path: &str, body: &str) -> Result<(u16, String), BoxError> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("no status line in {response:?}"))?;
    let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b).to_string();
    Ok((status, body))
}

/// The smoke run: a temporary store, a server on an ephemeral loopback
/// port, a few requests from this process, their answers checked.
async fn smoke() -> Result<(), BoxError> {
    let dir = tempfile::tempdir()?;
    let db = Db::open(dir.path(), Options::default()).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(serve(db, listener, async {
        let _ = stopped.await;
    }));

    assert_eq!(request(addr, "PUT", "/kv/fruit:apple", "red").await?.0, 204);
    assert_eq!(request(addr, "PUT", "/kv/fruit:banana", "yellow").await?.0, 204);
    assert_eq!(request(addr, "PUT", "/kv/veg:leek", "green").await?.0, 204);
    assert_eq!(
        request(addr, "GET", "/kv/fruit:apple", "").await?,
        (200, "red".to_string())
    );
    assert_eq!(request(addr, "GET", "/kv/fruit:cherry", "").await?.0, 404);
    let (status, body) = request(addr, "GET", "/scan?prefix=fruit:", "").await?;
    assert_eq!(
        (status, body.as_str()),
        (200, r#"[["fruit:apple","red"],["fruit:banana","yellow"]]"#)
    );
    let (_, body) = request(addr, "GET", "/scan?start=fruit:b&reverse=true&limit=1", "").await?;
    assert_eq!(body, r#"[["veg:leek","green"]]"#);
    assert_eq!(request(addr, "DELETE", "/kv/fruit:apple", "").await?.0, 204);
    assert_eq!(request(addr, "GET", "/kv/fruit:apple", "").await?.0, 404);

    let _ = stop.send(());
    server.await??;
    // The server closed the store: it opens again, with the writes in it.
    let db = Db::open(dir.path(), Options::default()).await?;
    assert_eq!(db.get("fruit:banana").await?.as_deref(), Some(&b"yellow"[..]));
    assert_eq!(db.get("fruit:apple").await?, None);
    db.close().await?;
    println!("kv_service smoke: 9 requests on {addr} answered as expected; store closed and reopened: ok");
    Ok(())
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--smoke") {
        return smoke().await;
    }
    let dir = args.first().map_or("./kv-data", String::as_str);
    let db = Db::open(dir, Options::default()).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("serving {dir} on http://{}; Ctrl-C stops", listener.local_addr()?);
    serve(db, listener, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
}
