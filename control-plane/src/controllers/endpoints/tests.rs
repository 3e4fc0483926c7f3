//! Endpoints controller tests against the fake API.

use std::sync::Arc;

use drover_proto::meta::Condition;
use drover_proto::types::pod::{PodPhase, PodStatus};
use drover_proto::types::service::Endpoints;
use drover_proto::types::{Pod, Service};
use drover_proto::{Kind, Resource};

use super::EndpointsController;
use crate::controllers::api::ControllerApi;
use crate::controllers::fake::FakeApi;
use crate::controllers::harness::{decode, object};
use crate::controllers::runtime::{Backoff, Cache, Clock, FakeClock, WorkQueue, drain};

struct T {
    api: FakeApi,
    c: EndpointsController<FakeApi>,
}

impl T {
    fn new() -> T {
        let clock =
            FakeClock::new(chrono::DateTime::from_timestamp(1_700_000_000, 0).expect("valid"));
        let shared: Arc<dyn Clock> = Arc::new(clock);
        let api = FakeApi::new(shared.clone());
        let queue = Arc::new(WorkQueue::new(shared, Backoff::default()));
        let c = EndpointsController::new(
            api.clone(),
            Cache::default(),
            Cache::default(),
            Cache::default(),
            queue,
        );
        T { api, c }
    }

    async fn sync(&self) {
        let opts = Default::default();
        let (items, _) = self.api.list(Kind::Service, &opts).await.expect("list");
        let h = self.c.service_handler();
        for n in self.c.services.replace(decode(items)) {
            h(&n);
        }
        let (items, _) = self.api.list(Kind::Pod, &opts).await.expect("list");
        let h = self.c.pod_handler();
        for n in self.c.pods.replace(decode(items)) {
            h(&n);
        }
        let (items, _) = self.api.list(Kind::Endpoints, &opts).await.expect("list");
        let h = self.c.endpoints_handler();
        for n in self.c.endpoints.replace(decode(items)) {
            h(&n);
        }
        drain(&self.c, &self.c.queue).await;
    }

    /// Syncs until nothing changes (each write shows up on the next sync).
    async fn settle(&self) {
        for _ in 0..10 {
            self.sync().await;
        }
    }

    fn endpoints(&self) -> Vec<Endpoints> {
        decode(self.api.objects(Kind::Endpoints))
    }

    /// (ready IPs, not-ready IPs, ports) of the one Endpoints named `name`.
    fn summary(&self, name: &str) -> (Vec<String>, Vec<String>, Vec<i32>) {
        let ep = self
            .endpoints()
            .into_iter()
            .find(|e| e.metadata.name == name)
            .expect("endpoints exist");
        let mut out = (vec![], vec![], vec![]);
        for s in ep.subsets {
            out.0.extend(s.addresses.into_iter().map(|a| a.ip));
            out.1
                .extend(s.not_ready_addresses.into_iter().map(|a| a.ip));
            out.2.extend(s.ports.into_iter().map(|p| p.port));
        }
        out
    }

    /// A pod as an agent reports it: bound, Running, with an IP.
    fn pod(&self, name: &str, app: &str, ip: &str, ready: bool) {
        let created = self
            .api
            .create_now(&object(&format!(
                r#"
apiVersion: v1
kind: Pod
metadata: {{name: {name}, labels: {{app: {app}}}}}
spec:
  nodeName: n1
  containers: [{{name: c, image: "example/web:1", ports: [{{name: http, containerPort: 8080}}]}}]
"#
            )))
            .expect("pod");
        let mut p = Pod::from_object(&created).expect("decode");
        set_status(&mut p, ip, ready);
        self.api.update_status_now(&p.to_object()).expect("status");
    }

    fn set_ready(&self, name: &str, ready: bool) {
        let mut p: Pod = decode::<Pod>(self.api.objects(Kind::Pod))
            .into_iter()
            .find(|p| p.metadata.name == name)
            .expect("pod");
        let ip = p
            .status
            .as_ref()
            .and_then(|s| s.pod_ip.clone())
            .unwrap_or_default();
        set_status(&mut p, &ip, ready);
        p.metadata.resource_version = None;
        self.api.update_status_now(&p.to_object()).expect("status");
    }
}

fn set_status(p: &mut Pod, ip: &str, ready: bool) {
    p.status = Some(PodStatus {
        phase: PodPhase::Running,
        pod_ip: Some(ip.into()),
        conditions: vec![Condition {
            type_: "Ready".into(),
            status: if ready { "True" } else { "False" }.into(),
            ..Condition::default()
        }],
        ..PodStatus::default()
    });
}

const SERVICE: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: web, labels: {tier: front}}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
"#;

#[tokio::test]
async fn endpoints_follow_pod_readiness_and_deletion() {
    let t = T::new();
    t.api.create_now(&object(SERVICE)).expect("service");
    t.pod("a", "web", "10.88.0.2", true);
    t.pod("b", "web", "10.88.0.3", false);
    t.pod("other", "db", "10.88.0.4", true);
    t.settle().await;
    assert_eq!(
        t.summary("web"),
        (
            vec!["10.88.0.2".into()],
            vec!["10.88.0.3".into()],
            vec![8080]
        )
    );
    let ep = &t.endpoints()[0];
    assert_eq!(
        ep.metadata.labels.get("tier").map(String::as_str),
        Some("front")
    );

    t.set_ready("b", true);
    t.settle().await;
    assert_eq!(t.summary("web").0, ["10.88.0.2", "10.88.0.3"]);

    // Graceful deletion: the pod leaves the endpoints while still running.
    t.api.delete_now(Kind::Pod, "default", "a").expect("delete");
    assert_eq!(t.api.objects(Kind::Pod).len(), 3, "still terminating");
    t.settle().await;
    assert_eq!(t.summary("web").0, ["10.88.0.3"]);

    // Endpoints deleted by hand come back; they go with their Service.
    t.api
        .delete_now(Kind::Endpoints, "default", "web")
        .expect("delete");
    t.settle().await;
    assert_eq!(t.summary("web").0, ["10.88.0.3"]);
    t.api
        .delete_now(Kind::Service, "default", "web")
        .expect("delete");
    t.settle().await;
    assert!(t.endpoints().is_empty());
}

#[tokio::test]
async fn a_service_without_selector_keeps_its_hand_written_endpoints() {
    let t = T::new();
    t.api
        .create_now(&object(
            "apiVersion: v1\nkind: Service\nmetadata: {name: ext}\nspec:\n  ports: [{port: 80}]\n",
        ))
        .expect("service");
    t.api
        .create_now(&object(
            "apiVersion: v1\nkind: Endpoints\nmetadata: {name: ext}\nsubsets: [{addresses: [{ip: 192.0.2.1}], ports: [{port: 80}]}]\n",
        ))
        .expect("endpoints");
    t.pod("a", "web", "10.88.0.2", true);
    t.settle().await;
    assert_eq!(t.summary("ext").0, ["192.0.2.1"]);
}

#[tokio::test]
async fn a_service_with_no_pods_has_empty_endpoints() {
    let t = T::new();
    t.api.create_now(&object(SERVICE)).expect("service");
    t.settle().await;
    let eps = t.endpoints();
    assert_eq!(eps.len(), 1);
    assert!(eps[0].subsets.is_empty());
    let svc: Vec<Service> = decode(t.api.objects(Kind::Service));
    assert_eq!(eps[0].metadata.name, svc[0].metadata.name);
}
