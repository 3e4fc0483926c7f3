//! The seam between controllers and the API: the few calls they make, so
//! tests can run them against an in-memory fake instead of a server.

use std::future::Future;
use std::pin::Pin;

use drover_proto::client::{Client, ClientError, DeleteOptions, ListOptions, WatchEvent};
use drover_proto::{Kind, Object};
use futures::{Stream, StreamExt};

/// A watch's events, boxed so fakes and the real client share one type.
pub type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchEvent, ClientError>> + Send>>;

/// What controllers need from the API server.
pub trait ControllerApi: Clone + Send + Sync + 'static {
    fn list(
        &self,
        kind: Kind,
        opts: &ListOptions,
    ) -> impl Future<Output = Result<(Vec<Object>, u64), ClientError>> + Send;

    /// Changes after `revision`.
    fn watch(
        &self,
        kind: Kind,
        opts: &ListOptions,
        revision: u64,
    ) -> impl Future<Output = Result<WatchStream, ClientError>> + Send;

    /// A fresh read from the API, bypassing caches (e.g. before adopting,
    /// to be sure the owner still exists).
    fn get(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
    ) -> impl Future<Output = Result<Object, ClientError>> + Send;

    fn create(&self, object: &Object) -> impl Future<Output = Result<Object, ClientError>> + Send;

    /// Compare-and-set when `metadata.resourceVersion` is set.
    fn update(&self, object: &Object) -> impl Future<Output = Result<Object, ClientError>> + Send;

    fn update_status(
        &self,
        object: &Object,
    ) -> impl Future<Output = Result<Object, ClientError>> + Send;

    fn delete(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
        opts: &DeleteOptions,
    ) -> impl Future<Output = Result<Object, ClientError>> + Send;
}

impl ControllerApi for Client {
    async fn list(
        &self,
        kind: Kind,
        opts: &ListOptions,
    ) -> Result<(Vec<Object>, u64), ClientError> {
        Client::list(self, kind, opts).await
    }

    async fn watch(
        &self,
        kind: Kind,
        opts: &ListOptions,
        revision: u64,
    ) -> Result<WatchStream, ClientError> {
        let stream = Client::watch(self, kind, opts, Some(revision)).await?;
        Ok(stream.boxed())
    }

    async fn get(&self, kind: Kind, namespace: &str, name: &str) -> Result<Object, ClientError> {
        Client::get(self, kind, namespace, name).await
    }

    async fn create(&self, object: &Object) -> Result<Object, ClientError> {
        Client::create(self, object).await.map(|(o, _)| o)
    }

    async fn update(&self, object: &Object) -> Result<Object, ClientError> {
        Client::update(self, object).await.map(|(o, _)| o)
    }

    async fn update_status(&self, object: &Object) -> Result<Object, ClientError> {
        Client::update_status(self, object).await
    }

    async fn delete(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
        opts: &DeleteOptions,
    ) -> Result<Object, ClientError> {
        Client::delete(self, kind, namespace, name, opts).await
    }
}

/// Writes `updated` (a copy of `current` with a new status) unless nothing
/// changed. The write is unconditional: status is derived from the cache and
/// the next reconcile corrects a stale one. A vanished object is not an error.
pub async fn write_status<A: ControllerApi, T: drover_proto::Resource + PartialEq>(
    api: &A,
    current: &T,
    mut updated: T,
) -> Result<(), crate::controllers::error::ControllerError> {
    if *current == updated {
        return Ok(());
    }
    updated.metadata_mut().resource_version = None;
    match api.update_status(&updated.to_object()).await {
        Ok(_) | Err(ClientError::NotFound(_)) => Ok(()),
        Err(e) => Err(crate::controllers::error::ControllerError::api(
            "updating status of",
            format!("{}/{}", T::KIND.lower(), current.name()),
            e,
        )),
    }
}
