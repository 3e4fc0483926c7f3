//! Event expiry: Events last seen longer ago than the TTL are deleted, as
//! the Kubernetes API server's `--event-ttl` (default 1 h) does, so a
//! long-lived cluster does not accumulate them forever. Runs on the leader.

use std::sync::Arc;
use std::time::Duration;

use drover_proto::client::{DeleteOptions, ListOptions};
use drover_proto::types::Event;
use drover_proto::{Kind, Resource, Time};

use super::api::ControllerApi;
use super::runtime::Clock;

/// Kubernetes' default `--event-ttl`.
pub const DEFAULT_TTL: Duration = Duration::from_secs(3600);

/// `(namespace, name)` of the events whose last occurrence (else first,
/// else creation) is more than `ttl` before `now`.
pub fn expired(events: &[Event], now: Time, ttl: Duration) -> Vec<(String, String)> {
    let Ok(ttl) = chrono::Duration::from_std(ttl) else {
        return Vec::new();
    };
    events
        .iter()
        .filter(|e| {
            e.last_timestamp
                .or(e.first_timestamp)
                .or(e.metadata.creation_timestamp)
                .is_some_and(|seen| now - seen > ttl)
        })
        .map(|e| (e.namespace().to_string(), e.name().to_string()))
        .collect()
}

/// One pass: lists Events and deletes the expired ones; returns how many.
pub async fn sweep<A: ControllerApi>(api: &A, now: Time, ttl: Duration) -> usize {
    let events: Vec<Event> = match api.list(Kind::Event, &ListOptions::default()).await {
        Ok((objects, _)) => objects
            .iter()
            .filter_map(|o| Event::from_object(o).ok())
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e, "event expiry: cannot list events");
            return 0;
        }
    };
    let mut deleted = 0;
    for (ns, name) in expired(&events, now, ttl) {
        match api
            .delete(Kind::Event, &ns, &name, &DeleteOptions::default())
            .await
        {
            Ok(_) => deleted += 1,
            // Gone already, or changed: the next pass looks again.
            Err(e) => tracing::debug!(error = %e, %ns, %name, "event expiry: delete failed"),
        }
    }
    deleted
}

/// Sweeps every `ttl / 4` (between 1 s and 1 min) until dropped.
pub async fn run<A: ControllerApi>(api: A, clock: Arc<dyn Clock>, ttl: Duration) {
    let period = (ttl / 4).clamp(Duration::from_secs(1), Duration::from_secs(60));
    loop {
        let n = sweep(&api, clock.now(), ttl).await;
        if n > 0 {
            tracing::info!(deleted = n, "expired events removed");
        }
        tokio::time::sleep(period).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controllers::fake::FakeApi;
    use crate::controllers::runtime::FakeClock;

    fn event(name: &str, last: Option<Time>) -> Event {
        let mut e = Event::default();
        e.metadata.name = name.into();
        e.metadata.namespace = Some("default".into());
        e.involved_object.kind = "Pod".into();
        e.involved_object.name = "p".into();
        e.reason = "Tested".into();
        e.last_timestamp = last;
        e
    }

    #[test]
    fn only_events_older_than_the_ttl_expire() {
        let now = chrono::Utc::now();
        let events = vec![
            event("old", Some(now - chrono::Duration::minutes(61))),
            event("recent", Some(now - chrono::Duration::minutes(59))),
            event("undated", None),
        ];
        assert_eq!(
            expired(&events, now, DEFAULT_TTL),
            vec![("default".to_string(), "old".to_string())]
        );
    }

    #[tokio::test]
    async fn a_sweep_deletes_expired_events_through_the_api() {
        let clock = Arc::new(FakeClock::new(chrono::Utc::now()));
        let api = FakeApi::new(clock.clone());
        let now = clock.now();
        for e in [
            event("old", Some(now - chrono::Duration::hours(2))),
            event("new", Some(now)),
        ] {
            api.create(&e.to_object()).await.expect("create");
        }
        assert_eq!(sweep(&api, now, DEFAULT_TTL).await, 1);
        let left: Vec<String> = api
            .objects(Kind::Event)
            .iter()
            .map(|o| o.name().to_string())
            .collect();
        assert_eq!(left, ["new"]);
    }
}
