//! Entry points for fuzzing what the API decodes from callers: a gRPC
//! request (the protobuf message, then what the server makes of it) and an
//! HTTP gateway request (path, query, JSON or YAML body), against a real
//! store in a folder. The cargo-fuzz targets (`fuzz/`) and the stable
//! regression test (`tests/request_decoding.rs`) both call these, so an
//! input that panicked once keeps being tried.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request};
use drover_proto::grpc as pb;
use drover_proto::grpc::api_server::Api;
use futures::StreamExt;
use prost::Message;
use tower::ServiceExt;

use super::ApiCore;
use crate::store::{OpenError, Store};

/// How long a streaming answer (a watch) is read before it is dropped.
const STREAM_READ: Duration = Duration::from_millis(5);

/// One API server's request handling, without a listener or credentials
/// (authorization off, as on a loopback server).
pub struct Harness {
    core: ApiCore,
    router: axum::Router,
    runtime: tokio::runtime::Runtime,
}

impl Harness {
    /// A harness over a store in `data_dir`.
    pub fn new(data_dir: &Path) -> Result<Harness, OpenError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| OpenError::Db {
                path: data_dir.display().to_string(),
                message: format!("no runtime: {e}"),
            })?;
        // The store's writer and the dashboard's history spawn tasks.
        let _in_runtime = runtime.enter();
        let store: Arc<Store> = Store::open(data_dir, 1000)?;
        let core = ApiCore::new(store, None);
        let router = super::http::router(core.clone()).merge(crate::ui::router(core.clone()));
        Ok(Harness {
            core,
            router,
            runtime,
        })
    }

    /// A gRPC call: the first byte picks the method, the rest is its
    /// request message as protobuf.
    pub fn grpc(&self, input: &[u8]) {
        let Some((&method, message)) = input.split_first() else {
            return;
        };
        let core = &self.core;
        self.runtime.block_on(async {
            fn decoded<M: Message + Default>(bytes: &[u8]) -> Option<tonic::Request<M>> {
                M::decode(bytes).ok().map(tonic::Request::new)
            }
            match method % 8 {
                0 => drop(opt(decoded(message), |r| Api::create(core, r)).await),
                1 => drop(opt(decoded(message), |r| Api::get(core, r)).await),
                2 => drop(opt(decoded(message), |r| Api::list(core, r)).await),
                3 => drop(opt(decoded(message), |r| Api::update(core, r)).await),
                4 => drop(opt(decoded(message), |r| Api::update_status(core, r)).await),
                5 => drop(opt(decoded(message), |r| Api::delete(core, r)).await),
                6 => {
                    if let Some(Ok(reply)) = opt(decoded(message), |r| Api::watch(core, r)).await {
                        let mut stream = reply.into_inner();
                        let _ = tokio::time::timeout(STREAM_READ, async {
                            while stream.next().await.is_some() {}
                        })
                        .await;
                    }
                }
                _ => drop(
                    opt(decoded::<pb::VersionRequest>(message), |r| {
                        Api::version(core, r)
                    })
                    .await,
                ),
            }
        });
    }

    /// An HTTP request: the first byte picks the method and whether the
    /// body is YAML; the path and query run to the first newline; the
    /// rest is the body.
    pub fn http(&self, input: &[u8]) {
        let Some((&head, rest)) = input.split_first() else {
            return;
        };
        let method = [
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::PATCH,
        ][usize::from(head % 5)]
        .clone();
        let content_type = if head & 0x80 != 0 {
            "application/yaml"
        } else {
            "application/json"
        };
        let split = rest.iter().position(|b| *b == b'\n').unwrap_or(rest.len());
        let (target, body) = (&rest[..split], rest.get(split + 1..).unwrap_or_default());
        let Ok(target) = std::str::from_utf8(target) else {
            return;
        };
        // What hyper would refuse before routing is not ours to handle.
        let Ok(request) = Request::builder()
            .method(method)
            .uri(format!("/{}", target.trim_start_matches('/')))
            .header("content-type", content_type)
            .body(Body::from(body.to_vec()))
        else {
            return;
        };
        let router = self.router.clone();
        self.runtime.block_on(async move {
            let Ok(response) = router.oneshot(request).await;
            let mut body = response.into_body().into_data_stream();
            let _ =
                tokio::time::timeout(STREAM_READ, async { while body.next().await.is_some() {} })
                    .await;
        });
    }
}

async fn opt<R, T, F>(request: Option<R>, call: impl FnOnce(R) -> F) -> Option<T>
where
    F: std::future::Future<Output = T>,
{
    match request {
        Some(r) => Some(call(r).await),
        None => None,
    }
}
