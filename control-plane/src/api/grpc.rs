//! The native gRPC API (tonic), a thin adapter over [`ApiCore`].

use std::pin::Pin;

use drover_proto::Object;
use drover_proto::grpc as pb;
use futures::Stream;
use tonic::{Request, Response, Status};

use super::core::{ApiCore, ApiError, ErrorCode, object_namespace, parse_kind};

impl From<ApiError> for Status {
    fn from(e: ApiError) -> Status {
        match e.code {
            ErrorCode::NotFound => Status::not_found(e.message),
            ErrorCode::AlreadyExists => Status::already_exists(e.message),
            ErrorCode::Conflict => Status::aborted(e.message),
            ErrorCode::Invalid => Status::invalid_argument(e.message),
            ErrorCode::Gone => Status::out_of_range(e.message),
            ErrorCode::Unavailable => Status::unavailable(e.message),
            ErrorCode::Internal => Status::internal(e.message),
            ErrorCode::Unauthenticated => Status::unauthenticated(e.message),
            ErrorCode::Forbidden => Status::permission_denied(e.message),
        }
    }
}

fn decode_object(bytes: &[u8]) -> Result<Object, Status> {
    Object::from_json(bytes)
        .map_err(|e| Status::invalid_argument(format!("the object is not valid JSON: {e}")))
}

/// Authorizes `verb` on an object sent in a request, in its namespace;
/// `subresource` is `""` or `"/status"`.
fn authorize_object(
    core: &ApiCore,
    request: &tonic::Extensions,
    verb: &str,
    subresource: &str,
    object: &Object,
) -> Result<(), Status> {
    let kind = parse_kind(&object.kind)?;
    let resource = format!("{}{subresource}", kind.plural());
    let namespace = object_namespace(kind, object);
    core.authorize(request, verb, &resource, namespace)?;
    core.restrict_node_write(request, kind, namespace, &object.metadata.name)?;
    Ok(())
}

fn namespace_filter(ns: &str) -> Option<&str> {
    (!ns.is_empty()).then_some(ns)
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::WatchEvent, Status>> + Send>>;

#[tonic::async_trait]
impl pb::api_server::Api for ApiCore {
    async fn create(
        &self,
        req: Request<pb::CreateRequest>,
    ) -> Result<Response<pb::ObjectReply>, Status> {
        let (ext, req) = (req.extensions().clone(), req.into_inner());
        let obj = decode_object(&req.object)?;
        authorize_object(self, &ext, "create", "", &obj)?;
        let (obj, warnings) = ApiCore::create(self, obj, req.dry_run).await?;
        Ok(Response::new(pb::ObjectReply {
            object: obj.to_json(),
            warnings,
        }))
    }

    async fn get(&self, req: Request<pb::GetRequest>) -> Result<Response<pb::ObjectReply>, Status> {
        let (ext, req) = (req.extensions().clone(), req.into_inner());
        let kind = parse_kind(&req.kind)?;
        self.authorize(&ext, "get", kind.plural(), &req.namespace)?;
        self.read_barrier(req.stale).await?;
        let obj = ApiCore::get(self, kind, &req.namespace, &req.name)?;
        Ok(Response::new(pb::ObjectReply {
            object: obj.to_json(),
            warnings: vec![],
        }))
    }

    async fn list(&self, req: Request<pb::ListRequest>) -> Result<Response<pb::ListReply>, Status> {
        let (ext, req) = (req.extensions().clone(), req.into_inner());
        let kind = parse_kind(&req.kind)?;
        self.authorize(&ext, "list", kind.plural(), &req.namespace)?;
        self.read_barrier(req.stale).await?;
        let (items, rv) = ApiCore::list(
            self,
            kind,
            namespace_filter(&req.namespace),
            &req.label_selector,
            &req.field_selector,
        )?;
        Ok(Response::new(pb::ListReply {
            items: items.iter().map(|o| o.to_json()).collect(),
            resource_version: rv,
        }))
    }

    async fn update(
        &self,
        req: Request<pb::UpdateRequest>,
    ) -> Result<Response<pb::ObjectReply>, Status> {
        let (ext, req) = (req.extensions().clone(), req.into_inner());
        let obj = decode_object(&req.object)?;
        authorize_object(self, &ext, "update", "", &obj)?;
        let (obj, warnings) = ApiCore::update(self, obj, req.dry_run).await?;
        Ok(Response::new(pb::ObjectReply {
            object: obj.to_json(),
            warnings,
        }))
    }

    async fn update_status(
        &self,
        req: Request<pb::UpdateRequest>,
    ) -> Result<Response<pb::ObjectReply>, Status> {
        let (ext, req) = (req.extensions().clone(), req.into_inner());
        let obj = decode_object(&req.object)?;
        authorize_object(self, &ext, "update", "/status", &obj)?;
        let obj = ApiCore::update_status(self, obj).await?;
        Ok(Response::new(pb::ObjectReply {
            object: obj.to_json(),
            warnings: vec![],
        }))
    }

    async fn delete(
        &self,
        req: Request<pb::DeleteRequest>,
    ) -> Result<Response<pb::ObjectReply>, Status> {
        let (ext, req) = (req.extensions().clone(), req.into_inner());
        let kind = parse_kind(&req.kind)?;
        self.authorize(&ext, "delete", kind.plural(), &req.namespace)?;
        self.restrict_node_write(&ext, kind, &req.namespace, &req.name)?;
        let precondition = (req.resource_version != 0).then_some(req.resource_version);
        let obj = ApiCore::delete(
            self,
            kind,
            &req.namespace,
            &req.name,
            precondition,
            &req.propagation_policy,
            req.grace_period_seconds,
        )
        .await?;
        Ok(Response::new(pb::ObjectReply {
            object: obj.to_json(),
            warnings: vec![],
        }))
    }

    async fn bind(&self, req: Request<pb::BindRequest>) -> Result<Response<pb::BindReply>, Status> {
        let (ext, req) = (req.extensions().clone(), req.into_inner());
        // Proposed together, the bindings share the writer's batches.
        let results = futures::future::join_all(req.bindings.iter().map(|b| async {
            self.authorize(&ext, "create", "pods/binding", &b.namespace)?;
            let precondition = (b.resource_version != 0).then_some(b.resource_version);
            ApiCore::bind(self, &b.namespace, &b.name, &b.node_name, precondition).await
        }))
        .await;
        let results = results
            .into_iter()
            .map(|r| match r {
                Ok(()) => pb::BindResult {
                    code: tonic::Code::Ok as i32,
                    message: String::new(),
                },
                Err(e) => {
                    let status = Status::from(e);
                    pb::BindResult {
                        code: status.code() as i32,
                        message: status.message().to_string(),
                    }
                }
            })
            .collect();
        Ok(Response::new(pb::BindReply { results }))
    }

    type WatchStream = WatchStream;

    async fn watch(
        &self,
        req: Request<pb::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let (ext, req) = (req.extensions().clone(), req.into_inner());
        let kind = parse_kind(&req.kind)?;
        self.authorize(&ext, "watch", kind.plural(), &req.namespace)?;
        let mut watch = ApiCore::watch(
            self,
            kind,
            namespace_filter(&req.namespace),
            &req.label_selector,
            &req.field_selector,
            req.resource_version,
        )?;
        let stream = async_stream(move |tx| async move {
            while let Some(item) = watch.next().await {
                let msg = match item {
                    Ok(i) => Ok(pb::WatchEvent {
                        r#type: i.type_.to_string(),
                        object: i.object_json().into_owned(),
                        resource_version: i.revision,
                    }),
                    // Gone (relist) as OUT_OF_RANGE; a Secret that cannot be opened as INTERNAL.
                    Err(e) => Err(Status::from(e)),
                };
                let stop = msg.is_err();
                if tx.send(msg).await.is_err() || stop {
                    break;
                }
            }
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn version(
        &self,
        _req: Request<pb::VersionRequest>,
    ) -> Result<Response<pb::VersionReply>, Status> {
        Ok(Response::new(pb::VersionReply {
            version: drover_proto::VERSION.to_string(),
            revision: self.store.revision(),
        }))
    }
}

/// Runs `produce` on its own task, feeding a bounded channel the stream reads.
pub fn async_stream<T, F, Fut>(produce: F) -> tokio_stream::wrappers::ReceiverStream<T>
where
    T: Send + 'static,
    F: FnOnce(tokio::sync::mpsc::Sender<T>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(256);
    tokio::spawn(produce(tx));
    tokio_stream::wrappers::ReceiverStream::new(rx)
}
