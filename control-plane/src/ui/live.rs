//! `GET /ui/live`: server-sent events from the store's change feed, one
//! `change` event per burst (coalesced over 200 ms) naming the kinds that
//! changed, so each page refreshes only when something it shows moved.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use tokio::sync::broadcast::error::RecvError;

use super::Ui;
use crate::api::grpc::async_stream;

const COALESCE: Duration = Duration::from_millis(200);

pub async fn events(State(ui): State<Ui>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let mut feed = ui.core.store.changes();
    let stream = async_stream(move |tx| async move {
        loop {
            let mut kinds = BTreeSet::new();
            let mut revision = 0;
            match feed.recv().await {
                Ok(c) => {
                    kinds.insert(c.kind.name());
                    revision = c.revision;
                }
                Err(RecvError::Lagged(_)) => {
                    kinds.extend(drover_proto::Kind::ALL.iter().map(|k| k.name()));
                }
                Err(RecvError::Closed) => return,
            }
            let until = tokio::time::Instant::now() + COALESCE;
            while let Ok(r) = tokio::time::timeout_at(until, feed.recv()).await {
                match r {
                    Ok(c) => {
                        kinds.insert(c.kind.name());
                        revision = revision.max(c.revision);
                    }
                    Err(RecvError::Lagged(_)) => {
                        kinds.extend(drover_proto::Kind::ALL.iter().map(|k| k.name()));
                    }
                    Err(RecvError::Closed) => return,
                }
            }
            let data = serde_json::json!({"revision": revision, "kinds": kinds}).to_string();
            if tx
                .send(Ok(Event::default().event("change").data(data)))
                .await
                .is_err()
            {
                return;
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}
