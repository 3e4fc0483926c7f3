//! The Endpoints controller: for every Service with a selector, keeps the
//! Endpoints object of the same name listing the selected pods' addresses
//! (ready ones in `addresses`, others in `notReadyAddresses`) and the ports
//! the Service's `targetPort`s resolve to. Containers and VMs alike: it only
//! reads pod status (`podIP`, the Ready condition). Terminating pods leave at
//! once, before their agent sends SIGTERM.

pub mod subsets;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use drover_proto::client::{ClientError, DeleteOptions};
use drover_proto::types::Pod;
use drover_proto::types::service::{Endpoints, Service};
use drover_proto::{Kind, ObjectMeta, Resource};

use crate::controllers::api::ControllerApi;
use crate::controllers::error::ControllerError;
use crate::controllers::runtime::{
    Action, Cache, Handler, Notification, Reconciler, WorkQueue, key_of, split_key,
};
use subsets::{desired_subsets, selects};

pub struct EndpointsController<A: ControllerApi> {
    pub api: A,
    pub services: Cache<Service>,
    pub pods: Cache<Pod>,
    pub endpoints: Cache<Endpoints>,
    pub queue: Arc<WorkQueue>,
}

/// Whether a pod change can change any Endpoints (status churn such as
/// container restarts or probe times does not).
fn pod_changed(old: &Pod, new: &Pod) -> bool {
    let ip = |p: &Pod| p.status.as_ref().and_then(|s| s.pod_ip.clone());
    let phase = |p: &Pod| p.status.as_ref().map(|s| s.phase);
    old.metadata.labels != new.metadata.labels
        || old.metadata.deletion_timestamp != new.metadata.deletion_timestamp
        || old.spec.node_name != new.spec.node_name
        || old.spec.hostname != new.spec.hostname
        || ip(old) != ip(new)
        || phase(old) != phase(new)
        || old.is_ready() != new.is_ready()
}

impl<A: ControllerApi> EndpointsController<A> {
    pub fn new(
        api: A,
        services: Cache<Service>,
        pods: Cache<Pod>,
        endpoints: Cache<Endpoints>,
        queue: Arc<WorkQueue>,
    ) -> Self {
        EndpointsController {
            api,
            services,
            pods,
            endpoints,
            queue,
        }
    }

    pub fn service_handler(&self) -> Handler<Service> {
        let queue = self.queue.clone();
        Arc::new(move |n| match n {
            Notification::Added(s)
            | Notification::Updated { new: s, .. }
            | Notification::Deleted(s) => queue.add(key_of(s.as_ref())),
        })
    }

    /// Enqueues every Service that selected the pod before or selects it now.
    pub fn pod_handler(&self) -> Handler<Pod> {
        let queue = self.queue.clone();
        let services = self.services.clone();
        Arc::new(move |n| {
            let (old, new) = match n {
                Notification::Added(p) | Notification::Deleted(p) => (None, p),
                Notification::Updated { old, new } => {
                    if !pod_changed(old, new) {
                        return;
                    }
                    (Some(old), new)
                }
            };
            for svc in services.list(new.namespace()) {
                if selects(&svc, new) || old.is_some_and(|o| selects(&svc, o)) {
                    queue.add(key_of(svc.as_ref()));
                }
            }
        })
    }

    /// An Endpoints object changed behind our back (edited, deleted): look again.
    pub fn endpoints_handler(&self) -> Handler<Endpoints> {
        let queue = self.queue.clone();
        Arc::new(move |n| match n {
            Notification::Added(e)
            | Notification::Updated { new: e, .. }
            | Notification::Deleted(e) => queue.add(key_of(e.as_ref())),
        })
    }

    async fn delete_endpoints(&self, namespace: &str, name: &str) -> Result<(), ControllerError> {
        match self
            .api
            .delete(Kind::Endpoints, namespace, name, &DeleteOptions::default())
            .await
        {
            Ok(_) | Err(ClientError::NotFound(_)) => Ok(()),
            Err(e) => Err(ControllerError::api(
                "deleting",
                format!("endpoints/{name}"),
                e,
            )),
        }
    }
}

impl<A: ControllerApi> Reconciler for EndpointsController<A> {
    fn name(&self) -> &'static str {
        "endpoints"
    }

    async fn reconcile(&self, key: &str) -> Result<Action, ControllerError> {
        let Some(svc) = self.services.get(key) else {
            // The Service is gone: so are its endpoints.
            if self.endpoints.get(key).is_some() {
                let (ns, name) = split_key(key);
                self.delete_endpoints(ns, name).await?;
            }
            return Ok(Action::await_change());
        };
        if svc.spec.selector.is_empty() {
            // Endpoints of a Service without selector are the user's to write.
            return Ok(Action::await_change());
        }
        let pods = self.pods.list(svc.namespace());
        let subsets = desired_subsets(&svc, &pods);
        let object = format!("endpoints/{}", svc.name());
        match self.endpoints.get(key) {
            Some(current)
                if current.subsets == subsets && current.metadata.labels == svc.metadata.labels =>
            {
                Ok(Action::await_change())
            }
            Some(current) => {
                let mut updated = current.as_ref().clone();
                updated.subsets = subsets;
                updated.metadata.labels = svc.metadata.labels.clone();
                // Compare-and-set on the cached version: a stale cache retries.
                self.api
                    .update(&updated.to_object())
                    .await
                    .map_err(|e| ControllerError::api("updating", object, e))?;
                Ok(Action::await_change())
            }
            None => {
                let ep = Endpoints {
                    metadata: ObjectMeta {
                        name: svc.name().to_string(),
                        namespace: Some(svc.namespace().to_string()),
                        labels: svc.metadata.labels.clone(),
                        ..ObjectMeta::default()
                    },
                    subsets,
                    ..Endpoints::default()
                };
                self.api
                    .create(&ep.to_object())
                    .await
                    .map_err(|e| ControllerError::api("creating", object, e))?;
                Ok(Action::await_change())
            }
        }
    }
}
